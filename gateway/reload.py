"""Reloading the agents file on SIGHUP, without dropping a call.

The file is read and checked again in a worker thread (the event loop keeps serving audio). A valid file
replaces the process's `AgentBook` whole: calls answered from then on get the new profiles, calls already
running keep the agent they started with (each holds its own). A bad file is refused with every problem
logged, and the old profiles stay. The environment is the process's own: only the file can change.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

import structlog

from gateway.agents.loader import load_agents_file
from gateway.agents.profile import AgentBook
from gateway.env import ConfigError
from gateway.observability import metrics
from gateway.observability.logging import register_secret
from gateway.state import GatewayState

log = structlog.get_logger("gateway.agents")


async def reload_agents(state: GatewayState, environ: Mapping[str, str] | None = None) -> bool:
    """Read AGENTS_FILE again; True when the new profiles are in place."""
    settings = state.settings
    source = settings.agents.source if settings.agents is not None else None
    if source is None:
        log.info("agents_reload_skipped", reason="no AGENTS_FILE: the agent comes from environment variables, "
                 "which a running process cannot re-read")
        return False
    env = os.environ if environ is None else environ
    try:
        book = await asyncio.to_thread(load_agents_file, source, settings.agent, provider=settings.upstream.provider,
                                       dialect=settings.upstream.dialect, environ=env)
    except ConfigError as exc:
        metrics.AGENT_RELOADS.labels("refused").inc()
        old = state.agents
        log.error("agents_reload_refused", file=source, errors=str(exc).splitlines(),
                  kept=old.names() if old is not None else None)
        return False
    assert book is not None
    install(state, book)
    metrics.AGENT_RELOADS.labels("reloaded").inc()
    return True


def install(state: GatewayState, book: AgentBook) -> None:
    old = state.agents
    for profile in book.profiles.values():
        for secret in profile.agent.tools.secrets():
            if secret:
                register_secret(secret.reveal())
    metrics.initialise_labels(list(state.settings.carriers), state.settings.upstream.provider, book.names())
    state.agents = book
    state.toolboxes.clear()  # running calls hold their own; new calls build them from the new files
    before = set(old.names()) if old is not None else set()
    log.info("agents_reloaded", file=book.source, agents=book.names(), added=sorted(set(book.names()) - before) or None,
             removed=sorted(before - set(book.names())) or None, routes=len(book.routes), default=book.default,
             active_calls=len(state.calls))
