"""The media socket: the one place that owns a call's sockets and tasks.

It reads carrier frames, hands the decoded events to the `Call`, and performs the actions the call
returns; a second task does the same for the upstream Realtime socket (`http/upstream.py`), and a third
watches both sockets and the session's age. When either side ends, both sockets are closed and the
tasks are awaited: nothing outlives the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import WSMsgType, web
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from gateway.carriers.twilio import TwilioFace
from gateway.core.call import Call
from gateway.core.events import (
    CARRIER_AUDIO,
    CARRIER_CONNECTED,
    CARRIER_DTMF,
    CARRIER_INVALID,
    CARRIER_MARK,
    CARRIER_START,
    CARRIER_STOP,
    AppendAudio,
    CancelResponse,
    CarrierStart,
    ClearPlayback,
    ConfigureSession,
    Greet,
    Hangup,
    Note,
    PlayAudio,
    ProtocolViolation,
    Reconnect,
    RestoreConversation,
    SendMark,
    TruncateItem,
)
from gateway.http.stream_tokens import TokenRejected
from gateway.http.upstream import UPSTREAM_CLOSE_TIMEOUT_S, UpstreamLink
from gateway.http.voice import handshake_signature_valid
from gateway.observability import metrics
from gateway.observability.reports import call_summary, percentiles
from gateway.realtime import dialect
from gateway.realtime.connection import send_text_now
from gateway.telephony.twilio_rest import TelephonyUnavailable, fallback_twiml

if TYPE_CHECKING:
    from gateway.app import GatewayState

log = structlog.get_logger("gateway.media")

START_TIMEOUT_S = 10.0
LOGGED_VIOLATIONS = 5  # per call; the rest are only counted
TEXT = WSMsgType.TEXT


class MediaSession:
    """One carrier media stream and its upstream Realtime session."""

    def __init__(self, state: GatewayState, ws: web.WebSocketResponse, carrier_transport: Any = None) -> None:
        self.state = state
        self.ws = ws
        self.carrier_transport = carrier_transport  # watched for a carrier that stops reading
        self.face = TwilioFace()
        agent = state.settings.agent
        self.call = Call(interrupts_itself=agent.turn_detection.interrupt_response, greeting=agent.greeting,
                         max_reconnects=state.settings.max_reconnects)
        self.exporter = metrics.CallExporter(self.call.stats)
        self.link = UpstreamLink(self)
        self.upstream: ClientConnection | None = None  # the current Realtime session, None while switching
        self.upstream_task: asyncio.Task[None] | None = None
        self.monitor_task: asyncio.Task[None] | None = None
        self.fallback: str | None = None  # how the fallback went, when the upstream failed
        self.fallback_task: asyncio.Task[None] | None = None
        self.outcome: str | None = None
        self.reason = ""
        self.started_at = time.monotonic()
        self.started_wall = datetime.datetime.now(datetime.UTC)
        self.session_ready = False
        self.upstream_opening: float | None = None
        self.start: CarrierStart | None = None
        self.violations = 0
        self.log = log.bind(carrier=self.face.carrier)
        self.loop = self._loop = asyncio.get_running_loop()

    def now(self) -> float:
        return self._loop.time() * 1000.0

    # --- the carrier side: this task -------------------------------------------------------------

    async def run(self) -> None:
        call = self.call
        face = self.face
        loop = self._loop
        limit = self.state.settings.max_frames_per_second or 1 << 62
        window_end, frames = 0.0, 0  # caller audio frames in the current one-second window
        try:
            async with asyncio.timeout(START_TIMEOUT_S) as start_deadline:
                async for msg in self.ws:
                    if msg.type is TEXT:
                        kind, data = face.decode(msg.data)
                        if kind is CARRIER_AUDIO:
                            now = loop.time()
                            if now >= window_end:
                                window_end, frames = now + 1.0, 0
                            frames += 1
                            if frames > limit:
                                self.rate_limited()
                                continue
                            actions = call.carrier_audio(data, now * 1000.0)
                            if actions:
                                await self.perform(actions)
                            continue
                        if kind is CARRIER_MARK:
                            call.carrier_mark(data, self._loop.time() * 1000.0)
                            continue
                        if kind is CARRIER_START:
                            start_deadline.reschedule(self._loop.time() + self.state.settings.max_call_duration_s)
                            if not self.begin(data):
                                break
                        elif kind is CARRIER_STOP:
                            await self.perform(call.carrier_stop(self.now()))
                            break
                        elif kind is CARRIER_DTMF:
                            await self.perform(call.carrier_dtmf(data, self.now()))
                        elif kind is CARRIER_INVALID:
                            self.violation(data)
                        elif kind is not CARRIER_CONNECTED:
                            self.violation(ProtocolViolation("unexpected_event", kind))
                    elif msg.type is WSMsgType.BINARY:
                        self.violation(ProtocolViolation("binary_frame", f"{len(msg.data)} bytes"))
                    elif msg.type is WSMsgType.ERROR:
                        self.violation(ProtocolViolation("socket_error", str(self.ws.exception())))
                        self.end("carrier_error", "carrier socket error")
                        break
        except TimeoutError:
            if self.start is None:
                metrics.TOKENS_REJECTED.labels("no_start").inc()
                self.log.warning("media_stream_without_start", timeout_s=START_TIMEOUT_S)
                self.end("rejected", "no start frame")
            else:
                self.log.warning("call_too_long", max_s=self.state.settings.max_call_duration_s)
                self.end("timeout", "maximum call duration reached")
        except Exception:
            self.log.exception("media_session_failed")
            self.end("carrier_error", "internal error on the carrier side")
        finally:
            await self.finish()

    def begin(self, start: CarrierStart) -> bool:
        """Verify the stream token, then open the upstream. False: the stream is refused."""
        self.start = start
        structlog.contextvars.bind_contextvars(call_sid=start.call_id, stream_sid=start.stream_id,
                                               carrier=self.face.carrier)
        try:
            self.state.tokens.verify(start.parameters.get("token"), start.call_id)
        except TokenRejected as exc:
            metrics.TOKENS_REJECTED.labels(exc.reason).inc()
            self.log.warning("stream_token_rejected", reason=exc.reason)
            self.end("rejected", f"stream token {exc.reason}")
            return False
        self.log.info("call_started", upstream=self.state.upstream.describe(), dialect=self.state.upstream.dialect)
        self.upstream_task = asyncio.create_task(self.link.run(), name=f"upstream-{start.call_id}")
        self.monitor_task = asyncio.create_task(self.link.monitor(), name=f"monitor-{start.call_id}")
        return True

    def rate_limited(self) -> None:
        stats = self.call.stats
        stats.frames_rate_limited += 1
        if stats.frames_rate_limited == 1:
            self.log.warning("carrier_rate_limited", max_frames_per_second=self.state.settings.max_frames_per_second,
                             note="audio over the limit is dropped and counted; logged once per call")

    def carrier_stalled(self, seconds: float) -> None:
        """The carrier stopped reading what we send: end the call rather than queue for it."""
        metrics.SEND_STALLS.labels("carrier").inc()
        self.log.warning("carrier_send_stalled", seconds=round(seconds, 1))
        self.end("carrier_error", f"carrier stopped reading (send stalled for {seconds:.0f} s)")
        if self.carrier_transport is not None:
            self.carrier_transport.abort()

    def violation(self, v: ProtocolViolation) -> None:
        metrics.CARRIER_ERRORS.labels(self.face.carrier, v.kind).inc()
        self.violations += 1
        if self.violations <= LOGGED_VIOLATIONS:
            self.log.warning("carrier_frame_ignored", kind=v.kind, detail=v.detail,
                             more_not_logged=self.violations == LOGGED_VIOLATIONS)

    # --- performing the call's actions ---------------------------------------------------------

    async def perform(self, actions: tuple[Any, ...], received: float | None = None) -> None:
        face = self.face
        for action in actions:
            kind = type(action)
            if kind is PlayAudio:
                await self.to_carrier(face.play(action.payload))
            elif kind is SendMark:
                await self.to_carrier(face.mark(action.name))
            elif kind is AppendAudio:
                await self.to_upstream(dialect.append(action.payload))
            elif kind is ClearPlayback:
                await self.to_carrier(face.clear())
                if received is not None:
                    metrics.BARGE_IN_REACTION.observe((self._loop.time() * 1000.0 - received) / 1000.0)
            elif kind is TruncateItem:
                await self.to_upstream(dialect.truncate(action.item_id, action.content_index, action.audio_end_ms))
            elif kind is CancelResponse:
                await self.to_upstream(dialect.cancel(action.response_id))
            elif kind is ConfigureSession:
                await self.to_upstream(dialect.session_update(self.state.upstream.dialect, self.state.settings.agent))
            elif kind is Greet:
                await self.to_upstream(dialect.greet(action.text))
            elif kind is Note:
                getattr(self.log, action.level)(action.event, **action.fields)
            elif kind is Hangup:
                await self.hangup(action.outcome, action.reason)
            elif kind is Reconnect:
                self.link.request_switch(action.reason, action.detail)
            elif kind is RestoreConversation:
                for event in dialect.restore_events(self.state.upstream.dialect, action.turns):
                    await self.to_upstream(event)
                if action.turns:
                    self.log.info("conversation_restored", turns=len(action.turns))

    async def to_carrier(self, frame: bytes) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.send_frame(frame, TEXT)

    async def to_upstream(self, event: bytes) -> None:
        conn = self.upstream
        if conn is not None and not send_text_now(conn, event):
            with contextlib.suppress(ConnectionClosed):
                await conn.send(event, text=True)

    # --- ending --------------------------------------------------------------------------------

    def end(self, outcome: str, reason: str) -> None:
        if self.outcome is None:
            self.outcome, self.reason = outcome, reason

    async def hangup(self, outcome: str, reason: str) -> None:
        self.end(outcome, reason)
        if self.outcome == "upstream_error" and self.fallback_task is None and not self.ws.closed:
            # Shielded: Twilio may end the stream (and so this task) before its REST answer arrives.
            self.fallback_task = asyncio.create_task(self.fall_back(), name="fallback")
            await asyncio.shield(self.fallback_task)
        if not self.ws.closed:
            await self.ws.close(code=1000 if outcome != "rejected" else 1008, message=reason[:120].encode())

    async def fall_back(self) -> None:
        """The upstream failed: have Twilio play the apology (or dial the fallback number) instead of
        leaving the caller in silence; the stream is closed afterwards either way."""
        start = self.start
        if start is None:
            return
        try:
            await self.state.telephony.redirect(start.call_id, fallback_twiml(self.state.settings.fallback),
                                                start.account_id)
        except TelephonyUnavailable as exc:
            self.fallback = "unconfigured"
            self.log.warning("fallback_unavailable", reason=str(exc), note="closing the stream; Twilio hangs up")
        except Exception as exc:
            self.fallback = "failed"
            self.log.error("fallback_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        else:
            self.fallback = "redirected"
            self.log.info("fallback_redirected", dial=self.state.settings.fallback.number is not None)
        metrics.FALLBACKS.labels(self.fallback).inc()

    async def finish(self) -> None:
        if self.outcome is None:
            self.end("completed" if self.start else "carrier_error",
                     "carrier closed the stream" if self.start else "closed before start")
        tasks = [t for t in (self.upstream_task, self.monitor_task) if t is not None]
        for task in tasks:
            if not task.done():
                task.cancel()
        if self.upstream is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.upstream.close(), UPSTREAM_CLOSE_TIMEOUT_S)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.fallback_task is not None:  # bounded by the REST timeout
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.fallback_task
        if not self.ws.closed:
            code = 1008 if self.outcome == "rejected" else 1000
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, message=self.reason[:120].encode())
        self.exporter.flush()
        duration = time.monotonic() - self.started_at
        if self.start is not None:
            metrics.CALL_DURATION.observe(duration)
        metrics.CALLS.labels(self.face.carrier, self.state.upstream.provider, self.outcome).inc()
        start = self.start
        summary = call_summary(
            call_sid=start.call_id if start else None, stream_sid=start.stream_id if start else None,
            carrier=self.face.carrier, provider=self.state.upstream.provider,
            parameters=start.parameters if start else {}, started_at=self.started_wall, duration_s=duration,
            outcome=self.outcome or "completed", reason=self.reason, stats=self.call.stats,
            carrier_errors=self.violations, mask_numbers=self.state.settings.call_report_mask_numbers,
            fallback=self.fallback)
        self.log.info("call_summary", **{k: v for k, v in summary.items() if k not in ("call_sid", "stream_sid")})
        self.state.reports.submit(summary)

    def snapshot(self) -> dict[str, Any]:
        """Running figures for GET /calls."""
        s = self.call.stats
        start = self.start
        return {"call_sid": start.call_id if start else None, "stream_sid": start.stream_id if start else None,
                "carrier": self.face.carrier, "started_at": self.started_wall.isoformat(timespec="seconds"),
                "duration_s": round(time.monotonic() - self.started_at, 1), "upstream_ready": self.call.upstream_ready,
                "turns": s.turns, "barge_ins": s.barge_ins, "turn_latency_ms": percentiles(s.turn_latencies_ms),
                "heard_latency_ms": percentiles(s.heard_latencies_ms), "tokens": dict(s.tokens),
                "frames": {"inbound": s.frames_in, "outbound": s.frames_out}, "carrier_errors": self.violations,
                "reconnects": s.reconnects, "recycles": s.recycles}


async def media_socket(request: web.Request) -> web.StreamResponse:
    from gateway.app import STATE

    state = request.app[STATE]
    if not handshake_signature_valid(state, request):
        metrics.TOKENS_REJECTED.labels("bad_handshake_signature").inc()
        log.warning("media_handshake_signature_invalid", remote=request.remote)
        raise web.HTTPForbidden(text="invalid X-Twilio-Signature\n")
    # Frames stay bytes (orjson parses them as they are) and no per-message compression is offered.
    ws = web.WebSocketResponse(max_msg_size=state.settings.max_carrier_message_bytes, autoping=True,
                               decode_text=False, compress=False)
    await ws.prepare(request)
    session = MediaSession(state, ws, request.transport)
    state.call_started(session)
    try:
        await session.run()
    finally:
        state.call_ended(session)
    return ws
