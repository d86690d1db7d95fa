"""The body of `POST /calls` and `POST /calls/{id}/transfer`, read and checked field by field.

Every refusal is a `Refused` with the HTTP status, a bounded metric label and a message that names the
field (and never echoes more than a short excerpt of what was sent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.agents.profile import AgentBook, Profile
from gateway.outbound.settings import OutboundSettings

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SIP_URI = re.compile(r"^sip:[^\s<>\"]{3,250}$", re.IGNORECASE)
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
FIELDS = ("to", "from", "agent", "variables", "metadata", "machine_detection")
MAX_VARIABLES = 20
MAX_VARIABLE_CHARS = 200
MAX_VARIABLES_JSON = 450  # they travel as one stream parameter: Twilio keeps a name and value under 500
MAX_METADATA_JSON = 2000


class Refused(Exception):
    """A request the call API refuses: `status` (HTTP), `label` (bounded, for the metric), the message."""

    def __init__(self, status: int, label: str, message: str) -> None:
        super().__init__(message)
        self.status, self.label = status, label


def bad(message: str) -> Refused:
    return Refused(400, "bad_request", message)


@dataclass(frozen=True)
class CallRequest:
    to: str
    from_number: str
    profile: Profile
    variables: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    machine_detection: bool = False

    def variables_json(self) -> str | None:
        """The variables as one compact JSON stream parameter (keys sorted), None when there are none."""
        return orjson.dumps(self.variables, option=orjson.OPT_SORT_KEYS).decode() if self.variables else None


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or Refused."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise bad("the body must be a JSON object (it is not valid JSON)") from None
    if type(data) is not dict:
        raise bad("the body must be a JSON object")
    return data


def _excerpt(value: object) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode() if value is not None else "null"
    return repr(text[:40] + ("…" if len(text) > 40 else ""))


def phone_number(data: Mapping[str, Any], name: str, settings: OutboundSettings) -> str:
    """An E.164 number allowed by OUTBOUND_ALLOWED_PREFIXES (403 when outside them)."""
    value = data.get(name)
    if not isinstance(value, str) or not E164.match(value):
        raise bad(f"{name} must be a phone number in E.164 form, e.g. +14155550100 (got {_excerpt(value)})")
    if not settings.allows(value):
        raise Refused(403, "forbidden", f"{name} {value} is not in an allowed prefix (OUTBOUND_ALLOWED_PREFIXES: "
                      f"{','.join(settings.allowed_prefixes)})")
    return value


def call_request(data: Mapping[str, Any], agents: AgentBook, settings: OutboundSettings) -> CallRequest:
    """POST /calls: to, from, agent, variables, metadata, machine_detection."""
    unknown = sorted(k for k in data if k not in FIELDS)
    if unknown:
        raise bad(f"unknown field(s): {', '.join(repr(k[:40]) for k in unknown[:5])}; the fields are "
                  f"{', '.join(FIELDS)}")
    to = phone_number(data, "to", settings)
    name = data.get("agent")
    if name is not None and not isinstance(name, str):
        raise bad("agent must be the name of an agent profile (a string)")
    profile = agents.get(name) if name else agents.profiles[agents.default]
    if profile is None:
        raise bad(f"agent {_excerpt(name)} is not an agent profile; the agents are: {', '.join(agents.names())}")
    raw_from = data.get("from")
    if raw_from is None:
        if not profile.from_number:
            raise bad(f"from is required (or set from_number on agent {profile.name})")
        from_number = profile.from_number
    elif not isinstance(raw_from, str) or not E164.match(raw_from):
        raise bad(f"from must be a phone number in E.164 form, e.g. +14155550100 (got {_excerpt(raw_from)})")
    else:
        from_number = raw_from
    machine_detection = data.get("machine_detection", False)
    if type(machine_detection) is not bool:
        raise bad("machine_detection must be true or false")
    return CallRequest(to=to, from_number=from_number, profile=profile, variables=_variables(data.get("variables")),
                       metadata=_metadata(data.get("metadata")), machine_detection=machine_detection)


def _variables(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise bad("variables must be an object of names to strings, e.g. {\"first_name\": \"Ada\"}")
    if len(value) > MAX_VARIABLES:
        raise bad(f"variables must have at most {MAX_VARIABLES} entries (got {len(value)})")
    for key, item in value.items():
        if not VARIABLE_NAME.match(key):
            raise bad(f"variables: {_excerpt(key)} is not a name (a letter or _, then letters, digits or _; "
                      "at most 40 characters)")
        if not isinstance(item, str) or len(item) > MAX_VARIABLE_CHARS:
            raise bad(f"variables.{key} must be a string of at most {MAX_VARIABLE_CHARS} characters")
    if len(orjson.dumps(value)) > MAX_VARIABLES_JSON:
        raise bad(f"variables must take at most {MAX_VARIABLES_JSON} characters as JSON, all together")
    return dict(value)


def _metadata(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if type(value) is not dict:
        raise bad("metadata must be a JSON object")
    if len(orjson.dumps(value)) > MAX_METADATA_JSON:
        raise bad(f"metadata must take at most {MAX_METADATA_JSON} characters as JSON")
    return dict(value)


def transfer_target(data: Mapping[str, Any], settings: OutboundSettings) -> str:
    """POST /calls/{id}/transfer: `to`, an E.164 number (within OUTBOUND_ALLOWED_PREFIXES) or a sip: URI."""
    unknown = sorted(k for k in data if k != "to")
    if unknown:
        raise bad(f"unknown field(s): {', '.join(repr(k[:40]) for k in unknown[:5])}; the only field is to")
    value = data.get("to")
    if isinstance(value, str) and SIP_URI.match(value):
        return value
    if isinstance(value, str) and value.startswith("+"):
        return phone_number(data, "to", settings)
    raise bad(f"to must be a phone number in E.164 form or a sip: URI (got {_excerpt(value)})")
