"""Signed call reports: the `X-Gateway-Signature` header of each CALL_REPORT_URL post, and its settings.

The header is `t=<unix seconds>,v1=<hex HMAC-SHA256(CALL_REPORT_SECRET, "<t>.<body>")>`, the body being
the exact bytes posted (Stripe's scheme): the receiver recomputes the HMAC over the raw body, compares in
constant time, and refuses a timestamp too far from its clock, so a captured report cannot be replayed
later. Each attempt is signed afresh, a retry included. The README shows the check in five lines.

Settings: a CALL_REPORT_URL needs a CALL_REPORT_SECRET (16 characters or more), or
CALL_REPORT_ALLOW_UNSIGNED=true to post unsigned on purpose; anything else stops the start-up. A leaf
module (it imports only `gateway.env`), read by `config.load_settings`.
"""

from __future__ import annotations

import hashlib
import hmac

from gateway.env import CollectingEnv, Secret

HEADER = "X-Gateway-Signature"
MIN_SECRET_CHARS = 16


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The header's value for `body` posted at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def read_secret(env: CollectingEnv, url: str | None) -> Secret | None:
    """CALL_REPORT_SECRET, checked against CALL_REPORT_URL and CALL_REPORT_ALLOW_UNSIGNED; errors to `env`."""
    secret = env.secret("CALL_REPORT_SECRET")
    allow_unsigned = env.bool("CALL_REPORT_ALLOW_UNSIGNED", False)
    if secret and len(secret.reveal()) < MIN_SECRET_CHARS:
        env.error(f"CALL_REPORT_SECRET must be at least {MIN_SECRET_CHARS} characters long")
    if url and not secret and not allow_unsigned:
        env.error("CALL_REPORT_URL is set but CALL_REPORT_SECRET is not: set CALL_REPORT_SECRET to sign the "
                  f"reports ({HEADER} header), or CALL_REPORT_ALLOW_UNSIGNED=true to post them unsigned")
    if secret and not url:
        env.warn("CALL_REPORT_SECRET is set but CALL_REPORT_URL is not: it is not used")
    return secret
