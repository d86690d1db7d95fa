"""Per-call stream tokens: minted by the signed voice webhook, checked on the media socket.

A token is `v1.<expiry>.<nonce>.<signature>` with an HMAC-SHA256 over its subject, expiry, nonce and
binding, keyed by a secret every replica shares, so any replica can verify it. It is bound to its
subject (the CallSid; for a call the gateway places, the outbound call's own id, since the carrier names
the call only after the request that carries the token), short-lived, and single-use within a process
(the nonce is remembered until the token expires). The binding is the canonical form of the stream
parameters the call's behaviour depends on (`binding`: the agent, an outbound call's variables), so a
start frame cannot swap them for others.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping

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

    @property
    def ttl_s(self) -> float:
        return self._ttl

    def _sign(self, call_sid: str, expiry: int, nonce: str, bound: str) -> str:
        message = f"v1|{call_sid}|{expiry}|{nonce}" + (f"|{bound}" if bound else "")
        mac = hmac.new(self._key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def mint(self, call_sid: str, bound: str = "", ttl_s: float | None = None) -> str:
        """A token for `call_sid` (the subject), signing `bound` too (see `binding`); valid `ttl_s`
        (default: the configured lifetime)."""
        expiry = int(self._clock() + (self._ttl if ttl_s is None else ttl_s)) + 1
        nonce = secrets.token_urlsafe(12)
        return f"v1.{expiry}.{nonce}.{self._sign(call_sid, expiry, nonce, bound)}"

    def expiry_of(self, token: str) -> float | None:
        """When a well-formed token expires (unverified: for bookkeeping only)."""
        parts = token.split(".")
        return float(parts[1]) if len(parts) == 4 and parts[1].isdigit() else None

    def verify(self, token: str | None, call_sid: str, bound: str = "") -> None:
        """Accept the token once for this subject and binding, or raise TokenRejected."""
        if not token:
            raise TokenRejected("missing")
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit():
            raise TokenRejected("malformed")
        expiry, nonce, signature = int(parts[1]), parts[2], parts[3]
        if not hmac.compare_digest(signature.encode(), self._sign(call_sid, expiry, nonce, bound).encode()):
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


BOUND_PARAMETERS = ("agent", "outbound", "vars")


def binding(parameters: Mapping[str, str]) -> str:
    """The canonical form of the stream parameters a token signs: those of BOUND_PARAMETERS present,
    as `name=value` joined by newlines, in that order ("" when none is present: tokens minted before
    agents existed verify as before)."""
    return "\n".join(f"{name}={parameters[name]}" for name in BOUND_PARAMETERS if parameters.get(name) is not None)
