"""What a call leaves behind: its summary (logged, filed, posted), its metrics at the end, its cost, and
its running figures for GET /calls. A part of the media session (`MediaSession` is a `CallRecord`)."""

from __future__ import annotations

import datetime
import time
from typing import Any

from gateway.agent_settings import Agent
from gateway.carriers.base import Carrier
from gateway.config import Upstream
from gateway.core.call import Call
from gateway.core.events import StreamStart
from gateway.observability import metrics
from gateway.observability.reports import call_summary, percentiles
from gateway.state import GatewayState


class CallRecord:
    # what the MediaSession provides
    state: GatewayState
    carrier: Carrier
    call: Call
    start: StreamStart | None
    agent: Agent
    upstream: Upstream
    outbound: Any  # outbound.calls.OutboundCall | None
    recording: dict[str, Any] | None
    outcome: str | None
    reason: str
    fallback: str | None
    started_at: float
    started_wall: datetime.datetime
    log: Any

    def report(self, duration: float) -> None:
        state = self.state
        if self.start is not None:
            metrics.CALL_DURATION.observe(duration)
        agent = self.agent.name
        metrics.CALLS.labels(self.carrier.name, state.upstream.provider, self.outcome, agent).inc()
        start = self.start
        model = self.upstream.model
        cost = state.settings.prices.cost(model, self.call.stats.tokens) if start is not None else None
        if cost is not None:
            metrics.CALL_COST.labels(agent).inc(cost)
        if self.outbound is not None:
            self.outbound.detach(self, self.outcome)
        summary = call_summary(
            call_sid=start.call_id if start else None, stream_sid=start.stream_id if start else None,
            carrier=self.carrier.name, provider=state.upstream.provider,
            parameters=start.parameters if start else {}, started_at=self.started_wall, duration_s=duration,
            outcome=self.outcome or "completed", reason=self.reason, stats=self.call.stats,
            carrier_errors=self.call.stats.carrier_errors_total, mask_numbers=state.settings.call_report_mask_numbers,
            fallback=self.fallback, agent=agent,
            cost=None if cost is None else {"usd": round(cost, 6), "model": model},
            outbound=self.outbound.describe() if self.outbound is not None else None, recording=self.recording)
        self.log.info("call_summary", **{k: v for k, v in summary.items() if k not in ("call_sid", "stream_sid")})
        state.reports.submit(summary)

    def snapshot(self) -> dict[str, Any]:
        """Running figures for GET /calls."""
        s = self.call.stats
        start = self.start
        return {"call_sid": start.call_id if start else None, "stream_sid": start.stream_id if start else None,
                "carrier": self.carrier.name, "agent": self.agent.name,
                "started_at": self.started_wall.isoformat(timespec="seconds"),
                "duration_s": round(time.monotonic() - self.started_at, 1), "upstream_ready": self.call.upstream_ready,
                "turns": s.turns, "barge_ins": s.barge_ins, "turn_latency_ms": percentiles(s.turn_latencies_ms),
                "heard_latency_ms": percentiles(s.heard_latencies_ms), "tokens": dict(s.tokens),
                "frames": {"inbound": s.frames_in, "outbound": s.frames_out},
                "carrier_errors": s.carrier_errors_total, "reconnects": s.reconnects, "recycles": s.recycles}
