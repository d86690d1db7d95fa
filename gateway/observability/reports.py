"""The call summary: one record at the end of every call, logged, filed and posted.

Filing (a JSONL file per day) and posting (to CALL_REPORT_URL, with bounded retries; each attempt
signed with CALL_REPORT_SECRET, see `signing`) happen in a background worker fed by a bounded queue: a
slow disk or a failing endpoint never delays a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import structlog

from gateway.core.stats import CallStats
from gateway.env import ConfigError, Env, Secret
from gateway.observability.signing import HEADER, signature

log = structlog.get_logger("gateway.reports")

QUEUE_SIZE = 1000
POST_ATTEMPTS = 3
POST_TIMEOUT_S = 5.0
POST_BACKOFF_S = 0.5


def mask_number(number: str | None) -> str | None:
    if not number:
        return number
    digits = sum(c.isdigit() for c in number)
    seen = 0
    out = []
    for c in number:
        if c.isdigit():
            seen += 1
            out.append(c if seen > digits - 4 else "•")
        else:
            out.append(c)
    return "".join(out)


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": pick(0.5), "p95": pick(0.95), "max": round(ordered[-1], 1), "count": len(ordered)}


def transcript_with_truncations(stats: CallStats) -> list[dict[str, Any]]:
    cut = {item_id: end_ms for item_id, end_ms, _ in stats.truncations}
    out = []
    for line in stats.transcript:
        entry = dict(line)
        if entry.get("item_id") in cut:
            entry["interrupted"] = True
            entry["heard_ms"] = cut[entry["item_id"]]
        out.append(entry)
    return out


def call_summary(
    *,
    call_sid: str | None,
    stream_sid: str | None,
    carrier: str,
    provider: str,
    parameters: dict[str, str],
    started_at: dt.datetime,
    duration_s: float,
    outcome: str,
    reason: str,
    stats: CallStats,
    carrier_errors: int,
    mask_numbers: bool,
    fallback: str | None = None,
    agent: str = "default",
    cost: dict[str, Any] | None = None,
    outbound: dict[str, Any] | None = None,
    recording: dict[str, Any] | None = None,
) -> dict[str, Any]:
    caller, callee = parameters.get("from"), parameters.get("to")
    if mask_numbers:
        caller, callee = mask_number(caller), mask_number(callee)
        if outbound is not None:
            outbound = {**outbound, "from": mask_number(outbound.get("from")), "to": mask_number(outbound.get("to"))}
    return {
        "call_sid": call_sid,
        "stream_sid": stream_sid,
        "carrier": carrier,
        "provider": provider,
        "agent": agent,
        "from": caller,
        "to": callee,
        "started_at": started_at.isoformat(timespec="milliseconds"),
        "duration_s": round(duration_s, 3),
        "outcome": outcome,
        "reason": reason,
        # from the stream's start to the first session answering; None: the agent never came on the line
        "upstream_ready_ms": None if stats.upstream_ready_ms is None else round(stats.upstream_ready_ms),
        "turns": stats.turns,
        "barge_ins": stats.barge_ins,
        "turn_latency_ms": percentiles(stats.turn_latencies_ms),
        "heard_latency_ms": percentiles(stats.heard_latencies_ms),
        "truncations": [{"item_id": i, "heard_ms": e, "received_ms": round(s)} for i, e, s in stats.truncations],
        "truncates_rejected": stats.truncates_rejected,
        "tokens": dict(stats.tokens),
        "cost": cost,  # {usd, model}: the tokens priced by PRICES_FILE; None without a price for the model
        "responses": dict(stats.responses),
        "upstream_errors": list(stats.upstream_errors),
        "carrier_errors": carrier_errors,
        "audio_s": {"inbound": round(stats.audio_in_ms / 1000, 3), "outbound": round(stats.audio_out_ms / 1000, 3)},
        "frames": {"inbound": stats.frames_in, "outbound": stats.frames_out, "dropped": stats.frames_dropped,
                   "stale_deltas_dropped": stats.stale_deltas_dropped, "rate_limited": stats.frames_rate_limited,
                   "amd_held": stats.frames_amd_held},
        "reconnects": stats.reconnects,
        "recycles": stats.recycles,
        "fallback": fallback,
        # RECORDINGS_DIR set: {file, duration_s, truncated}, or {file: None, error, truncated} when it failed
        "recording": recording,
        # each function call: name, call_id, outcome, duration_ms, and its arguments unless the tool is sensitive
        "tool_calls": [dict(call) for call in stats.tool_calls],
        "transfers": list(stats.transfers),
        # keypad entries sent to the model: {digits (masked when the dtmf section is sensitive), count, sensitive}
        "keypad": [dict(entry) for entry in stats.keypad],
        "keys_pressed": stats.dtmf,
        "idle_reprompts": stats.idle_reprompts,
        # outbound calls with answering-machine detection: human, machine, unknown, or timeout (taken for a person)
        "answered_by": stats.answered_by,
        "transcript": transcript_with_truncations(stats),
        # a call the gateway placed (POST /calls): its record (outbound.calls.OutboundCall.describe); else None
        "outbound": outbound,
    }


def reports_dir(env: Env) -> Path | None:
    """CALL_REPORTS_DIR, created when missing; ConfigError when it cannot be, or is not writable."""
    raw = env.str("CALL_REPORTS_DIR")
    if not raw:
        return None
    path = Path(raw)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"CALL_REPORTS_DIR cannot be created: {raw} ({exc.strerror})") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"CALL_REPORTS_DIR is not writable: {raw}")
    return path


class ReportSink:
    """Files and posts summaries in the background. `submit` never blocks and never raises."""

    def __init__(self, directory: Path | None, url: str | None, secret: Secret | None = None) -> None:
        self.directory = directory
        self.url = url
        self.secret = secret  # None: posted unsigned (CALL_REPORT_ALLOW_UNSIGNED)
        self.dropped = 0
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return self.directory is not None or self.url is not None

    async def start(self) -> None:
        if self.enabled:
            self._task = asyncio.create_task(self._work(), name="call-reports")

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), flush_timeout_s)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        if self._http is not None:
            await self._http.close()

    def submit(self, summary: dict[str, Any]) -> None:
        if not self.enabled:
            return
        try:
            self._queue.put_nowait(summary)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning("call_report_dropped", reason="queue full", dropped=self.dropped)

    async def _work(self) -> None:
        while True:
            summary = await self._queue.get()
            try:
                line = orjson.dumps(summary) + b"\n"
                if self.directory is not None:
                    await asyncio.to_thread(self._append, line)
                if self.url is not None:
                    await self._post(line, summary.get("call_sid"))
            except Exception as exc:  # a report must never take the worker down
                log.error("call_report_failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()

    def _append(self, line: bytes) -> None:
        assert self.directory is not None
        day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
        with open(self.directory / f"calls-{day}.jsonl", "ab") as f:
            f.write(line)

    async def _post(self, body: bytes, call_sid: str | None) -> None:
        assert self.url is not None
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_S))
        for attempt in range(1, POST_ATTEMPTS + 1):
            headers = {"Content-Type": "application/json"}
            if self.secret is not None:  # signed at each attempt: a retry carries a fresh timestamp
                headers[HEADER] = signature(self.secret.reveal(), body, int(time.time()))
            try:
                async with self._http.post(self.url, data=body, headers=headers) as resp:
                    if resp.status < 300:
                        return
                    error = f"HTTP {resp.status}"
                    if 400 <= resp.status < 500 and resp.status != 429:
                        break  # the endpoint refuses this report: retrying will not help
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}"
            if attempt < POST_ATTEMPTS:
                await asyncio.sleep(POST_BACKOFF_S * 2 ** (attempt - 1))
        log.warning("call_report_post_failed", call_sid=call_sid, error=error, attempts=attempt)
