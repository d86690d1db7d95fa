"""Telnyx's settings: the public key that verifies webhooks, the API key for live calls, the stream codec.

Read once at start-up through `gateway.env.Env`, so every error names the variable and what it accepts.

- TELNYX_PUBLIC_KEY: the account's Ed25519 public key, base64, as the Mission Control Portal shows it
  (32 bytes once decoded; TX-K). Set: webhooks must carry a valid `telnyx-signature-ed25519`.
- TELNYX_API_KEY: an API key (a secret), the Bearer token of the TeXML REST API (TX-U). Set together with
  the public key: the gateway can hang up, fall back and transfer live calls.
- TELNYX_CODEC: PCMU (default) or PCMA, G.711 at 8 kHz both ways; passed through to the Realtime session
  untouched (audio/pcmu or audio/pcma in GA, g711_ulaw or g711_alaw in beta).
- TELNYX_WEBHOOK_MAX_AGE_S: how far a webhook's `telnyx-timestamp` may be from now, either way
  (default 300 s, the tolerance of Telnyx's own SDKs).
- TELNYX_API_BASE_URL: the REST API's base URL (tests and proxies).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.core.codec import PCMA, PCMU, Codec
from gateway.env import ConfigError, Env, Secret, check_url

API_BASE_URL = "https://api.telnyx.com"
CODECS = {"pcmu": PCMU, "pcma": PCMA}
WEBHOOK_MAX_AGE_S = 300


@dataclass(frozen=True)
class TelnyxSettings:
    public_key: str | None = None  # base64, as configured; None: webhooks are not verified, no REST calls
    api_key: Secret | None = None  # None: no REST calls
    codec: Codec = PCMU
    webhook_max_age_s: int = WEBHOOK_MAX_AGE_S
    api_base_url: str = API_BASE_URL  # no trailing slash
    verify_key: Ed25519PublicKey | None = field(default=None, compare=False, repr=False)  # public_key, loaded

    def secrets(self) -> list[Secret]:
        """The secrets that are set, for the log redaction."""
        return [self.api_key] if self.api_key else []


def public_key_of(value: str) -> Ed25519PublicKey:
    """The Ed25519 public key of a base64 value (32 bytes once decoded); ValueError otherwise."""
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{len(raw)} bytes once decoded, not 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def load(env: Env) -> TelnyxSettings:
    """Read and validate the TELNYX_* variables; raises ConfigError naming the variable."""
    public_key = env.str("TELNYX_PUBLIC_KEY")
    verify_key = None
    if public_key:
        try:
            verify_key = public_key_of(public_key)
        except ValueError as exc:
            raise ConfigError("TELNYX_PUBLIC_KEY must be your Telnyx public key, base64 (32 bytes once decoded), "
                              f"as the Mission Control Portal shows it under Keys & Credentials ({exc})") from None
    api_key = env.secret("TELNYX_API_KEY")
    if api_key and any(c.isspace() or not c.isprintable() for c in api_key.reveal()):
        raise ConfigError("TELNYX_API_KEY must be one API key, without spaces or line breaks")
    codec = CODECS[env.choice("TELNYX_CODEC", "pcmu", tuple(CODECS))]
    max_age = env.int("TELNYX_WEBHOOK_MAX_AGE_S", WEBHOOK_MAX_AGE_S, 1, 3600) or WEBHOOK_MAX_AGE_S
    base_url = check_url("TELNYX_API_BASE_URL", env.str("TELNYX_API_BASE_URL", API_BASE_URL) or "",
                         ("https", "http")).rstrip("/")
    return TelnyxSettings(public_key=public_key or None, api_key=api_key, codec=codec, webhook_max_age_s=max_age,
                          api_base_url=base_url, verify_key=verify_key)
