"""Per-call stream tokens: minted by the signed voice webhook, checked on the media socket.

A token is `v1.<expiry>.<nonce>.<signature>` with an HMAC-SHA256 over the CallSid, expiry and nonce,
keyed by a secret every replica shares, so any replica can verify it. It is bound to the CallSid,
short-lived, and single-use within a process (the nonce is remembered until the token expires).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from gateway.config import Secret


class TokenRejected(Exception):
    """`reason` is a bounded label (for metrics); the message never contains the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StreamTokens:
    def __init__(self, secret: Secret, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._key = secret.reveal().encode()
        self._ttl = ttl_s
        self._clock = clock
        self._used: dict[str, float] = {}  # nonce -> expiry

    def _sign(self, call_sid: str, expiry: int, nonce: str) -> str:
        mac = hmac.new(self._key, f"v1|{call_sid}|{expiry}|{nonce}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def mint(self, call_sid: str) -> str:
        expiry = int(self._clock() + self._ttl) + 1
        nonce = secrets.token_urlsafe(12)
        return f"v1.{expiry}.{nonce}.{self._sign(call_sid, expiry, nonce)}"

    def verify(self, token: str | None, call_sid: str) -> None:
        """Accept the token once for this CallSid, or raise TokenRejected."""
        if not token:
            raise TokenRejected("missing")
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit():
            raise TokenRejected("malformed")
        expiry, nonce, signature = int(parts[1]), parts[2], parts[3]
        if not hmac.compare_digest(signature.encode(), self._sign(call_sid, expiry, nonce).encode()):
            raise TokenRejected("bad_signature")
        now = self._clock()
        if now > expiry:
            raise TokenRejected("expired")
        self._forget_expired(now)
        if nonce in self._used:
            raise TokenRejected("replayed")
        self._used[nonce] = expiry

    def _forget_expired(self, now: float) -> None:
        if len(self._used) > 256:
            for nonce in [n for n, exp in self._used.items() if exp < now]:
                del self._used[nonce]
