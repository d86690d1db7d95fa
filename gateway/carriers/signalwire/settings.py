"""SignalWire's settings: the Signing Key that signs webhooks, and the REST credentials for live calls.

Read once at start-up through `gateway.env.Env`, so every error names the variable and what it
accepts. The Signing Key (API Credentials page of the Space, one per project) verifies webhooks; the
Space URL, the Project ID and an API token (Basic auth `ProjectID:APIToken`) drive the Compatibility
REST API at `https://<space>.signalwire.com/api/laml/2010-04-01/...`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.env import ConfigError, Env, Secret, check_url

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# A Space's host: <space>.signalwire.com (a DNS label, then SignalWire's domain).
SPACE_HOST = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.signalwire\.com$")


@dataclass(frozen=True)
class SignalWireSettings:
    signing_key: Secret | None = None  # None: webhooks are not verified, and no REST calls are made
    space_url: str | None = None  # the Space's host, e.g. example.signalwire.com
    project_id: str | None = None  # a UUID; the AccountSid of the Compatibility API
    api_token: Secret | None = None
    api_base_url: str | None = None  # no trailing slash; None: https://<space_url>

    @property
    def rest_base_url(self) -> str | None:
        """Where the REST API is: the override, else the Space's own host; None when neither is set."""
        if self.api_base_url:
            return self.api_base_url
        return f"https://{self.space_url}" if self.space_url else None

    def secrets(self) -> list[Secret]:
        """The secrets that are set, for the log redaction."""
        return [value for value in (self.signing_key, self.api_token) if value]


def space_host(value: str) -> str:
    """SIGNALWIRE_SPACE_URL as a bare host: `example.signalwire.com`, also given as `https://...` with
    or without a trailing slash. ConfigError for anything else."""
    host = value.strip()
    if host.lower().startswith("https://"):
        host = host[len("https://"):]
    host = host.rstrip("/").lower()
    if not SPACE_HOST.match(host):
        raise ConfigError("SIGNALWIRE_SPACE_URL must be your Space's host, e.g. example.signalwire.com "
                          f"(got {value!r})")
    return host


def load(env: Env) -> SignalWireSettings:
    """Read and validate the SIGNALWIRE_* variables; raises ConfigError naming the variable."""
    space = env.str("SIGNALWIRE_SPACE_URL")
    space = space_host(space) if space else None
    project_id = env.str("SIGNALWIRE_PROJECT_ID")
    if project_id and not UUID.match(project_id):
        raise ConfigError("SIGNALWIRE_PROJECT_ID must be a UUID such as a1b2c3d4-e5f6-7890-abcd-ef1234567890 "
                          "(the Project ID on the API Credentials page)")
    api_token = env.secret("SIGNALWIRE_API_TOKEN")
    if (project_id is None) != (api_token is None):
        raise ConfigError("set both SIGNALWIRE_PROJECT_ID and SIGNALWIRE_API_TOKEN, or neither")
    base_url = env.str("SIGNALWIRE_API_BASE_URL")
    if base_url:
        base_url = check_url("SIGNALWIRE_API_BASE_URL", base_url, ("https", "http")).rstrip("/")
    if api_token is not None and not space and not base_url:
        raise ConfigError("SIGNALWIRE_API_TOKEN needs SIGNALWIRE_SPACE_URL (the Space whose REST API it opens)")
    return SignalWireSettings(signing_key=env.secret("SIGNALWIRE_SIGNING_KEY"), space_url=space,
                              project_id=project_id, api_token=api_token, api_base_url=base_url or None)
