"""Plivo's settings: the Auth ID and Auth Token (which signs webhooks and opens the REST API).

Read once at start-up through `gateway.env.Env`, so every error names the variable and what it
accepts. The Auth Token verifies the answer webhook's V3 signature (`X-Plivo-Signature-V3`); with the
Auth ID it is the Basic auth of the Call API at `https://api.plivo.com/v1/Account/{auth_id}/...`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.env import ConfigError, Env, Secret, check_url

API_BASE_URL = "https://api.plivo.com"
# Plivo shows Auth IDs as 20 upper-case letters and digits (MA... for an account, SA... for a
# subaccount); accepted a little wider here, but only letters and digits: it goes into a URL path.
AUTH_ID = re.compile(r"^[A-Za-z0-9]{10,40}$")


@dataclass(frozen=True)
class PlivoSettings:
    auth_id: str | None = None  # None: no REST calls
    auth_token: Secret | None = None  # None: webhooks are not verified, and no REST calls are made
    api_base_url: str = API_BASE_URL  # no trailing slash

    def secrets(self) -> list[Secret]:
        """The secrets that are set, for the log redaction."""
        return [self.auth_token] if self.auth_token else []


def load(env: Env) -> PlivoSettings:
    """Read and validate the PLIVO_* variables; raises ConfigError naming the variable."""
    auth_id = env.str("PLIVO_AUTH_ID")
    if auth_id and not AUTH_ID.match(auth_id):
        raise ConfigError("PLIVO_AUTH_ID must be your Plivo Auth ID: letters and digits only, "
                          "as shown on the Plivo console's Overview page")
    base_url = check_url("PLIVO_API_BASE_URL", env.str("PLIVO_API_BASE_URL", API_BASE_URL) or "",
                         ("https", "http")).rstrip("/")
    return PlivoSettings(auth_id=auth_id or None, auth_token=env.secret("PLIVO_AUTH_TOKEN"),
                         api_base_url=base_url)
