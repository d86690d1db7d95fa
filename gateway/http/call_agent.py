"""The agent of one call: its profile (the one the webhook chose and signed into the stream token, or the
dialed number's), the profile's agent with the call's values filled in, and the tools that agent runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from gateway.agent_settings import Agent
from gateway.agents.profile import AgentBook, Profile
from gateway.carriers.base import Capabilities
from gateway.core.call import Call
from gateway.state import GatewayState
from gateway.tools.runner import Toolbox


def new_call(state: GatewayState, capabilities: Capabilities, agent: Agent) -> Call:
    """The core of one call, set up for its agent and its carrier."""
    settings = state.settings
    return Call(interrupts_itself=agent.turn_detection.interrupt_response, greeting=agent.greeting,
                max_reconnects=settings.max_reconnects, retry_backoff_s=state.upstream.retry_backoff_s,
                session_max_s=settings.session_max_s, stall_timeout_s=settings.send_stall_timeout_s,
                max_frames_per_second=settings.max_frames_per_second, marks=capabilities.marks,
                whole_frames=capabilities.frame_ms > 0, ready_timeout_s=settings.upstream_ready_timeout_s,
                sensitive_tools=agent.tools.sensitive(), keypad=agent.tools.keypad,
                commit_turns=agent.turn_detection.mode == "none", idle=agent.idle)


def choose(book: AgentBook, parameters: Mapping[str, str], log: Any) -> tuple[Profile, Agent]:
    """The profile named by the stream's `agent` parameter; one removed by a reload since the webhook
    answered: the dialed number's (logged). Its agent with {{from}}, {{to}}, {{now}} and the call's
    variables filled in."""
    named = parameters.get("agent")
    profile = book.get(named)
    if profile is None:
        profile = book.route(parameters.get("to"))
        if named:
            log.warning("agent_unknown", agent=named, using=profile.name,
                        note="the agents file was reloaded since the call was answered")
    agent = profile.for_call(from_number=parameters.get("from"), to_number=parameters.get("to"),
                             variables=call_variables(parameters.get("vars")))
    return profile, agent


MAX_VARIABLES_CHARS = 4096


def call_variables(raw: str | None) -> dict[str, str]:
    """An outbound call's variables: the `vars` stream parameter (a JSON object of strings, signed into the
    stream token with the rest); anything else is no variables."""
    if not raw or len(raw) > MAX_VARIABLES_CHARS:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str | int | float) and not isinstance(v, bool)}


def toolbox_for(state: GatewayState, agent: Agent) -> Toolbox:
    """The tools of the call's agent: the environment agent's are the process's `Toolbox`; a profile's own
    tools file gets one of its own (built once per tools file, sharing the one HTTP client)."""
    if state.tools is None:
        state.tools = Toolbox(state.settings.agent.tools)
    if agent.tools is state.settings.agent.tools:
        return state.tools
    key = id(agent.tools)
    box = state.toolboxes.get(key)
    if box is None or box.spec is not agent.tools:
        box = state.toolboxes[key] = Toolbox(agent.tools, http=state.tools.http)
    return box
