"""Twilio's settings: the auth token that signs webhooks, and the REST credentials for live calls.

Read once at start-up through `gateway.env.Env`, so every error names the variable and what it
accepts. The auth token is both the webhook signing key and, without an API key, the REST password;
an API key (SID and secret, for the account in TWILIO_ACCOUNT_SID) replaces it for the REST API only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.env import ConfigError, Env, Secret, check_url

API_BASE_URL = "https://api.twilio.com"
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
API_KEY_SID = re.compile(r"^SK[0-9a-fA-F]{32}$")


@dataclass(frozen=True)
class TwilioSettings:
    auth_token: Secret | None = None  # None: webhooks and handshakes are not verified, no REST calls
    account_sid: str | None = None  # None: the accountSid of the stream's start message
    api_key_sid: str | None = None
    api_key_secret: Secret | None = None
    api_base_url: str = API_BASE_URL  # no trailing slash

    def secrets(self) -> list[Secret]:
        """The secrets that are set, for the log redaction."""
        return [value for value in (self.auth_token, self.api_key_secret) if value]


def load(env: Env) -> TwilioSettings:
    """Read and validate the TWILIO_* variables; raises ConfigError naming the variable."""
    account_sid = env.str("TWILIO_ACCOUNT_SID")
    if account_sid and not ACCOUNT_SID.match(account_sid):
        raise ConfigError("TWILIO_ACCOUNT_SID must be AC followed by 32 hex digits")
    key_sid, key_secret = env.str("TWILIO_API_KEY_SID"), env.secret("TWILIO_API_KEY_SECRET")
    if (key_sid is None) != (key_secret is None):
        raise ConfigError("set both TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET, or neither")
    if key_sid and not API_KEY_SID.match(key_sid):
        raise ConfigError("TWILIO_API_KEY_SID must be SK followed by 32 hex digits")
    if key_sid and not account_sid:
        raise ConfigError("TWILIO_API_KEY_SID needs TWILIO_ACCOUNT_SID (the account the key belongs to)")
    base_url = check_url("TWILIO_API_BASE_URL", env.str("TWILIO_API_BASE_URL", API_BASE_URL) or "",
                         ("https", "http")).rstrip("/")
    return TwilioSettings(auth_token=env.secret("TWILIO_AUTH_TOKEN"), account_sid=account_sid,
                          api_key_sid=key_sid, api_key_secret=key_secret, api_base_url=base_url)
