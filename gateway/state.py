"""The running gateway's shared state: settings, carriers, stream tokens, live calls, drain.

Its own module so that the HTTP handlers and the app both import it and neither imports the other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from gateway.carriers.base import Carrier
from gateway.config import Settings, Upstream
from gateway.http.stream_tokens import StreamTokens
from gateway.observability import metrics
from gateway.observability.reports import ReportSink


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
    calls: set[LiveCall] = field(default_factory=set)
    draining: bool = False
    reports: ReportSink = field(default_factory=lambda: ReportSink(None, None))
    echo: Any = None  # the built-in echo line, when running offline
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set while no call is active

    def __post_init__(self) -> None:
        self.idle.set()

    def call_started(self, call: LiveCall) -> None:
        self.calls.add(call)
        self.idle.clear()
        metrics.CALLS_ACTIVE.inc()

    def call_ended(self, call: LiveCall) -> None:
        if call in self.calls:
            self.calls.discard(call)
            metrics.CALLS_ACTIVE.dec()
        if not self.calls:
            self.idle.set()

    def accepting_calls(self) -> bool:
        limit = self.settings.max_concurrent_calls
        return not self.draining and (limit == 0 or len(self.calls) < limit)


STATE = web.AppKey("gateway_state", GatewayState)
