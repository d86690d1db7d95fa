"""The running gateway's shared state: settings, carriers, stream tokens, live calls, drain.

Its own module so that the HTTP handlers and the app both import it and neither imports the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from gateway.agents.profile import AgentBook
from gateway.carriers.base import Carrier
from gateway.config import Settings, Upstream
from gateway.http.stream_tokens import StreamTokens
from gateway.http.warm import WarmSessions
from gateway.observability import metrics
from gateway.observability.reports import ReportSink
from gateway.outbound.calls import OutboundBook


class LiveCall(Protocol):
    """What the gateway needs of a live call (http.media.MediaSession)."""

    def snapshot(self) -> dict[str, Any]: ...

    def flush_metrics(self) -> None: ...

    async def shut_down(self, reason: str) -> None: ...


@dataclass
class GatewayState:
    settings: Settings
    upstream: Upstream
    tokens: StreamTokens
    carriers: dict[str, Carrier] = field(default_factory=dict)
    calls: set[LiveCall] = field(default_factory=set)  # every open media socket
    admitted: set[LiveCall] = field(default_factory=set)  # the calls past their start: they count
    reservations: dict[str, float] = field(default_factory=dict)  # call id -> expiry: answered, stream due
    draining: bool = False
    reports: ReportSink = field(default_factory=lambda: ReportSink(None, None))
    agents: AgentBook | None = None  # the agent profiles (AGENTS_FILE, replaced whole on SIGHUP); None: settings.agent
    echo: Any = None  # the built-in echo line, when running offline
    tools: Any = None  # tools.runner.Toolbox: the tools file's tools and their one HTTP client
    toolboxes: dict[int, Any] = field(default_factory=dict)  # an agent profile's own tools file -> its Toolbox
    control_links: Any = None  # http.control.ControlLinks, when PUBLIC_URL is set
    outbound: OutboundBook = field(default_factory=OutboundBook)  # the calls this process placed (POST /calls)
    warm: WarmSessions | None = None  # the warm upstream pool and the sessions parked at webhooks (WARM_UPSTREAM_*)
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set while no call is active

    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.idle.set()
        if self.agents is None:
            self.agents = self.settings.agents or AgentBook.single(self.settings.agent)

    def call_started(self, call: LiveCall) -> None:
        self.calls.add(call)
        self.idle.clear()
        metrics.CALLS_ACTIVE.inc()

    def call_ended(self, call: LiveCall, call_id: str | None = None) -> None:
        if call in self.calls:
            self.calls.discard(call)
            metrics.CALLS_ACTIVE.dec()
        self.admitted.discard(call)
        if call_id is not None:
            self.reservations.pop(call_id, None)
        if not self.calls:
            self.idle.set()

    # --- capacity: MAX_CONCURRENT_CALLS counts answered calls whose stream is due, and admitted calls ---

    def _taken(self) -> int:
        now = self.clock()
        for call_id in [c for c, expiry in self.reservations.items() if expiry <= now]:
            del self.reservations[call_id]  # the stream never came: its token has expired
        return len(self.admitted) + len(self.reservations)

    def accepting_calls(self) -> bool:
        limit = self.settings.max_concurrent_calls
        return not self.draining and (limit == 0 or self._taken() < limit)

    def reserve(self, call_id: str, hold_s: float | None = None) -> bool:
        """The webhook is about to answer this call (or POST /calls to place it): hold a place for its stream
        until its token expires (`hold_s`, default STREAM_TOKEN_TTL_S). False: no place (or draining)."""
        if self.draining:
            return False
        if call_id in self.reservations:  # the carrier retried the webhook: one place, renewed
            del self.reservations[call_id]
        limit = self.settings.max_concurrent_calls
        if limit and self._taken() >= limit:
            return False
        self.reservations[call_id] = self.clock() + (self.settings.stream_token_ttl_s if hold_s is None else hold_s)
        return True

    def release(self, call_id: str) -> None:
        """A placed call ended without its stream (busy, not answered, failed): its place is free again."""
        self.reservations.pop(call_id, None)

    def admit(self, call: LiveCall, call_id: str) -> bool:
        """The call's stream started with a valid token: it takes its reserved place, or a free one (a
        call answered by another replica, or whose place expired). False: over the limit."""
        if self.reservations.pop(call_id, None) is None:
            limit = self.settings.max_concurrent_calls
            if limit and self._taken() >= limit:
                return False
        self.admitted.add(call)
        return True


STATE = web.AppKey("gateway_state", GatewayState)
