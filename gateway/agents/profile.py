"""One agent profile and the book of them.

A `Profile` is a named `Agent` (what the Realtime session is configured with) plus what only calls need:
the model it runs on, the number it calls from, what a voicemail gets, its own call-duration bound. Its
instructions, greeting and stored-prompt variables may hold `{{from}}`, `{{to}}`, `{{now}}` and an
outbound call's `{{variables}}`, filled per call by `for_call`. The `AgentBook` is what the HTTP layer
asks: `route(to)` for an inbound call, `get(name)` for an outbound one; it is replaced whole on reload
(a live call keeps the profile it started with).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from gateway.agent_settings import Agent

VoicemailMode = Literal["hangup", "speak", "say"]
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Voicemail:
    """What an outbound call answered by a machine gets (answering-machine detection): `hangup` at once;
    `speak`: after the beep the model says what `message` asks for, then the call ends; `say`: the
    carrier says `message` as it is, then hangs up."""

    mode: VoicemailMode = "hangup"
    message: str | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    agent: Agent  # instructions and stored-prompt variables may hold {{placeholders}}: see for_call
    model: str | None = None  # None: the upstream's model (OPENAI_REALTIME_MODEL / the Azure deployment)
    from_number: str | None = None  # E.164: the caller id of the calls it places (POST /calls default)
    voicemail: Voicemail = field(default_factory=Voicemail)
    max_call_duration_s: float | None = None  # None: MAX_CALL_DURATION_S

    def for_call(self, *, from_number: str | None, to_number: str | None,
                 variables: Mapping[str, str] | None = None, now: dt.datetime | None = None) -> Agent:
        """The agent of one call: placeholders filled from the call (an unknown one is left empty)."""
        values = {"from": from_number or "", "to": to_number or "",
                  "now": (now or dt.datetime.now(dt.UTC)).isoformat(timespec="minutes"), **(variables or {})}
        agent = self.agent
        instructions = fill(agent.instructions, values)
        greeting = fill(agent.greeting, values) if agent.greeting else agent.greeting
        prompt = agent.prompt
        if prompt is not None:
            prompt = replace(prompt, variables={k: fill(v, values) for k, v in prompt.variables.items()})
        if (instructions == agent.instructions and greeting == agent.greeting and prompt == agent.prompt
                and agent.name == self.name):
            return agent
        return replace(agent, instructions=instructions, greeting=greeting, prompt=prompt, name=self.name)


def fill(text: str, values: Mapping[str, str]) -> str:
    """`{{name}}` replaced by its value ("" when the call has none)."""
    if "{{" not in text:
        return text
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), "")), text)


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


@dataclass(frozen=True)
class Route:
    """A dialed number (E.164, exact) or a pattern (`*` any digits, `?` one: "+1800*") -> an agent."""

    pattern: str
    agent: str

    def matches(self, number: str) -> bool:
        if any(c in self.pattern for c in "*?["):
            return fnmatch.fnmatchcase(number, self.pattern)
        return number == self.pattern


@dataclass(frozen=True)
class AgentBook:
    """The process's agent profiles and routes. Exact numbers win over patterns, then patterns in the
    file's order, then the default."""

    profiles: Mapping[str, Profile]
    default: str
    routes: tuple[Route, ...] = ()
    source: str | None = None  # the file read (None: the single-agent environment variables)

    def __post_init__(self) -> None:
        if self.default not in self.profiles:
            raise ValueError(f"the default agent {self.default!r} is not a profile")

    @classmethod
    def single(cls, agent: Agent) -> AgentBook:
        """The book of a gateway configured by environment variables alone: one profile, `default`."""
        name = agent.name or "default"
        return cls({name: Profile(name, agent)}, name)

    def names(self) -> list[str]:
        return sorted(self.profiles)

    def get(self, name: str | None) -> Profile | None:
        return self.profiles.get(name) if name else None

    def route(self, to_number: str | None) -> Profile:
        """The profile answering a call to `to_number`."""
        if to_number:
            number = normalise(to_number)
            for route in self.routes:
                if not any(c in route.pattern for c in "*?[") and route.matches(number):
                    return self.profiles[route.agent]
            for route in self.routes:
                if route.matches(number):
                    return self.profiles[route.agent]
        return self.profiles[self.default]


def normalise(number: str) -> str:
    """A dialed number as routes name it: spaces, dashes, dots and brackets dropped (a SIP URI's user
    part for `sip:+1555...@host`)."""
    n = number.strip()
    if n.lower().startswith("sip:"):
        n = n[4:].split("@", 1)[0]
    return re.sub(r"[\s\-().]", "", n)
