"""Vonage's settings: the signature secret that signs webhooks, the application's id and private key for
the Voice REST API, and the sample rate of the call's WebSocket audio.

Read once at start-up through `gateway.env.Env`, so every error names the variable and what it accepts
(never its value: two of them are secrets).

- VONAGE_SIGNATURE_SECRET: the account's signature secret (Dashboard, API settings). Vonage signs Voice
  webhooks with a JWT (HS256, this secret) in `Authorization: Bearer` ("Decoding signed webhooks",
  https://developer.vonage.com/en/getting-started/concepts/webhooks#decoding-signed-webhooks). Set: the
  answer webhook must carry a valid one.
- VONAGE_APPLICATION_ID + VONAGE_PRIVATE_KEY (the PEM text) or VONAGE_PRIVATE_KEY_FILE (a path to it):
  the Voice REST API authenticates with an application JWT signed RS256 by the application's private key
  (https://developer.vonage.com/en/getting-started/concepts/authentication, and the Python SDK's
  `vonage_jwt.JwtClient`). Set: the gateway can hang up, fall back and transfer.
- VONAGE_SAMPLE_RATE: 8000 or 16000, the two rates of `audio/l16;rate=...` in the WebSockets guide
  (https://developer.vonage.com/en/voice/voice-api/concepts/websockets).
- VONAGE_API_BASE_URL: the Voice REST API (the SDKs' default host is api.nexmo.com); change it only for
  tests or a proxy. Left at the default, a call is controlled through the `region_url` its answer
  webhook named, when that is one of Vonage's API hosts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gateway.env import ConfigError, Env, Secret, check_url

API_BASE_URL = "https://api.nexmo.com"
SAMPLE_RATES = (8000, 16000)
APPLICATION_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_KEY_BYTES = 16384


@dataclass(frozen=True)
class VonageSettings:
    signature_secret: Secret | None = None  # None: webhooks are not verified (a warning at start-up)
    application_id: str | None = None  # None: no REST calls
    private_key: Secret | None = None  # the PEM text of the application's private key
    sample_rate: int = 16000  # of the WebSocket's L16 audio, both ways
    api_base_url: str = API_BASE_URL  # no trailing slash

    @property
    def controls_calls(self) -> bool:
        """The REST API can be used: an application id and its private key."""
        return self.application_id is not None and self.private_key is not None

    def secrets(self) -> list[Secret]:
        """The secrets that are set, for the log redaction."""
        return [value for value in (self.signature_secret, self.private_key) if value]


def _private_key(env: Env) -> Secret | None:
    """VONAGE_PRIVATE_KEY (PEM text, `\\n` escapes accepted) or the file VONAGE_PRIVATE_KEY_FILE names,
    checked to be an RSA private key in PEM (PKCS#8 or PKCS#1)."""
    text, path = env.str("VONAGE_PRIVATE_KEY"), env.str("VONAGE_PRIVATE_KEY_FILE")
    if text and path:
        raise ConfigError("set VONAGE_PRIVATE_KEY or VONAGE_PRIVATE_KEY_FILE, not both")
    name = "VONAGE_PRIVATE_KEY"
    if path:
        name = "VONAGE_PRIVATE_KEY_FILE"
        try:
            raw = Path(path).read_bytes()[: MAX_KEY_BYTES + 1]
        except OSError as exc:
            raise ConfigError(f"VONAGE_PRIVATE_KEY_FILE cannot be read ({exc.strerror or type(exc).__name__}): "
                              f"{path!r}") from None
        text = raw.decode("utf-8", errors="replace")
    if not text:
        return None
    pem = text.replace("\\n", "\n").strip()
    if len(pem) > MAX_KEY_BYTES:
        raise ConfigError(f"{name} is too long for a private key (over {MAX_KEY_BYTES} bytes)")
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(f"{name} must be the Vonage application's private key: an unencrypted RSA key in PEM "
                          "(-----BEGIN PRIVATE KEY----- ..., as the Dashboard downloads it as private.key); "
                          "the value is not shown")
    return Secret(pem)


def load(env: Env) -> VonageSettings:
    """Read and validate the VONAGE_* variables; raises ConfigError naming the variable."""
    application_id = env.str("VONAGE_APPLICATION_ID")
    if application_id and not APPLICATION_ID.match(application_id):
        raise ConfigError("VONAGE_APPLICATION_ID must be the application's id, a UUID such as "
                          "aaaaaaaa-bbbb-cccc-dddd-0123456789ab (Dashboard, Applications)")
    private_key = _private_key(env)
    if (application_id is None) != (private_key is None):
        raise ConfigError("set both VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY (or VONAGE_PRIVATE_KEY_FILE), "
                          "or neither")
    raw_rate = env.str("VONAGE_SAMPLE_RATE", "16000") or "16000"
    if raw_rate not in {str(r) for r in SAMPLE_RATES}:
        raise ConfigError(f"VONAGE_SAMPLE_RATE must be 8000 or 16000, the rates of Vonage's WebSocket audio "
                          f"(got {raw_rate[:20]!r})")
    rate = int(raw_rate)
    base_url = check_url("VONAGE_API_BASE_URL", env.str("VONAGE_API_BASE_URL", API_BASE_URL) or "",
                         ("https", "http")).rstrip("/")
    return VonageSettings(signature_secret=env.secret("VONAGE_SIGNATURE_SECRET"), application_id=application_id,
                          private_key=private_key, sample_rate=rate, api_base_url=base_url)
