"""The media socket: the one place that owns a call's sockets and tasks.

It reads carrier frames, has the carrier's stream face decode them, hands the typed events to the
`Call` and performs the actions the call returns: carrier actions are encoded by the stream face,
upstream actions by the Realtime face (through `UpstreamLink`, the upstream task), control actions
here. A third task ticks the call's housekeeping; the tools the model calls run as tasks of their own
(`tools.runner.CallTools`), and a transfer runs as one. When either side ends, both sockets are closed
and the tasks are cancelled or awaited: nothing outlives the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from gateway.agent_settings import Agent
from gateway.agents.profile import Profile
from gateway.carriers.base import Carrier
from gateway.core.call import Call
from gateway.core.events import (
    CARRIER,
    UPSTREAM,
    Abort,
    CallerAudio,
    ClearPlayback,
    Dtmf,
    Hangup,
    LeaveMessage,
    MarkPlayed,
    Note,
    PlayAudio,
    ProtocolViolation,
    Reconnect,
    RunTool,
    StreamStart,
    StreamStop,
    ToolResult,
    TransferCall,
    UpstreamEvent,
)
from gateway.http.call_agent import choose, new_call, toolbox_for
from gateway.http.call_control import CallControl
from gateway.http.call_record import CallRecord
from gateway.http.stream_tokens import TokenRejected, binding
from gateway.http.upstream import Closed, Failed, Opened, SessionChange, UpstreamLink, backed_up
from gateway.http.urls import carrier_of, websocket_url
from gateway.observability import metrics
from gateway.realtime.connection import with_model
from gateway.realtime.face import RealtimeFace
from gateway.recording.recorder import Recorder, recorder_for
from gateway.state import STATE, GatewayState
from gateway.tools.http_tool import CallContext, error_output
from gateway.tools.runner import CallTools

log = structlog.get_logger("gateway.media")

START_TIMEOUT_S = 10.0
TEXT = WSMsgType.TEXT
BINARY = WSMsgType.BINARY


class MediaSession(CallControl, CallRecord):
    """One carrier media stream and its upstream Realtime session."""

    def __init__(self, state: GatewayState, carrier: Carrier, ws: web.WebSocketResponse,
                 carrier_transport: Any = None) -> None:
        self.state = state
        self.carrier = carrier
        self.ws = ws
        self.carrier_transport = carrier_transport  # watched for a carrier that stops reading
        self.face = carrier.stream_face()
        self._audio_opcode = BINARY if carrier.capabilities.binary_audio else TEXT
        # The call's agent: the environment's until the stream's start names the profile (`choose_agent`).
        self.profile: Profile | None = None
        self.agent = state.settings.agent
        self.upstream = state.upstream
        self.call = self.new_call(self.agent)
        self.exporter = metrics.CallExporter(self.call.stats)
        self.link: UpstreamLink | None = None  # from the stream's start on
        self.upstream_task: asyncio.Task[None] | None = None
        self.monitor_task: asyncio.Task[None] | None = None
        self.fallback: str | None = None  # how the fallback went, when the upstream failed
        self.fallback_task: asyncio.Task[None] | None = None  # or the hang-up over the carrier's call control
        self.tools: CallTools | None = None  # from the stream's start on
        self.transfer_task: asyncio.Task[None] | None = None
        self.outbound: Any = None  # outbound.calls.OutboundCall: a call this process placed (POST /calls)
        self.recorder: Recorder | None = None  # from the stream's start on, when RECORDINGS_DIR is set
        self.recording: dict[str, Any] | None = None  # what the summary says of the recording
        self.outcome: str | None = None
        self.reason = ""
        self.aborted = False  # the carrier socket was dropped (its peer stopped reading)
        self.started_at = time.monotonic()
        self.started_wall = datetime.datetime.now(datetime.UTC)
        self.start: StreamStart | None = None
        self.token_valid = False  # the start carried this call's stream token
        self.log = log.bind(carrier=carrier.name)
        self._loop = asyncio.get_running_loop()

    def now(self) -> float:
        return self._loop.time() * 1000.0

    def new_call(self, agent: Agent) -> Call:
        return new_call(self.state, self.carrier.capabilities, agent)

    def choose_agent(self, start: StreamStart) -> None:
        """The call's agent profile and its agent for this call (`call_agent.choose`)."""
        if self.state.agents is None:
            return
        self.profile, agent = choose(self.state.agents, start.parameters, self.log)
        self.upstream = with_model(self.state.upstream, self.profile.model)
        if agent is not self.agent:
            self.agent = agent
            self.call = self.new_call(agent)
            self.exporter = metrics.CallExporter(self.call.stats)

    # --- the carrier side: this task -------------------------------------------------------------

    async def run(self) -> None:
        call = self.call
        face = self.face
        loop = self._loop
        try:
            async with asyncio.timeout(START_TIMEOUT_S) as start_deadline:
                async for msg in self.ws:
                    kind = msg.type
                    if kind is TEXT:
                        event = face.decode(msg.data)
                    elif kind is BINARY:
                        event = face.decode_binary(msg.data)
                    elif kind is WSMsgType.ERROR:
                        await self.violation(ProtocolViolation("socket_error", str(self.ws.exception())))
                        self.end("carrier_error", "carrier socket error")
                        break
                    else:
                        continue
                    etype = type(event)
                    if etype is CallerAudio:
                        now = loop.time() * 1000.0
                        if self.recorder is not None:
                            self.recorder.caller(event.payload, now)
                        actions = call.carrier_audio(event.payload, now)
                        if actions:
                            await self.perform(actions)
                    elif etype is MarkPlayed:
                        actions = call.carrier_mark(event.name, loop.time() * 1000.0)
                        if actions:  # the end of a goodbye played: hang up
                            await self.perform(actions)
                    elif etype is StreamStart:
                        if not self.begin(event):
                            break
                        call = self.call  # the agent's
                        early = self.outbound.answered_by if self.outbound is not None else None
                        if early is not None and event.parameters.get("amd") == "1":
                            await self.answered_by(early)  # the carrier's verdict came before the stream
                        start_deadline.reschedule(loop.time() + self.max_call_duration_s())
                    elif etype is StreamStop:
                        await self.perform(call.carrier_stop(self.now()))
                        break
                    elif etype is Dtmf:
                        await self.perform(call.carrier_dtmf(event.digit, self.now()))
                    elif etype is ProtocolViolation:
                        await self.violation(event)
        except TimeoutError:
            if self.start is None:
                metrics.TOKENS_REJECTED.labels("no_start").inc()
                self.log.warning("media_stream_without_start", timeout_s=START_TIMEOUT_S)
                self.end("rejected", "no start frame")
            else:
                self.log.warning("call_too_long", max_s=self.max_call_duration_s())
                self.end("timeout", "maximum call duration reached")
        except Exception:
            self.log.exception("media_session_failed")
            self.end("carrier_error", "internal error on the carrier side")
        finally:
            await self.finish()

    def begin(self, start: StreamStart) -> bool:
        """Verify the stream token, then open the upstream. False: the stream is refused."""
        self.start = start
        structlog.contextvars.bind_contextvars(call_sid=start.call_id, stream_sid=start.stream_id,
                                               carrier=self.carrier.name)
        state = self.state
        # A call the gateway placed carries its outbound id: the token's subject (the carrier names the call
        # only after the request that carried the token).
        subject = start.parameters.get("outbound") or start.call_id
        try:
            state.tokens.verify(start.parameters.get("token"), subject, binding(start.parameters))
        except TokenRejected as exc:
            metrics.TOKENS_REJECTED.labels(exc.reason).inc()
            self.log.warning("stream_token_rejected", reason=exc.reason)
            self.end("rejected", f"stream token {exc.reason}")
            return False
        self.token_valid = True
        if not self.attach_outbound(subject):
            return False
        if not state.admit(self, subject):
            metrics.TOKENS_REJECTED.labels("over_capacity").inc()
            self.log.warning("call_refused_over_capacity", max_concurrent_calls=state.settings.max_concurrent_calls)
            self.end("rejected", "over capacity (MAX_CONCURRENT_CALLS)")
            return False
        self.choose_agent(start)
        structlog.contextvars.bind_contextvars(agent=self.agent.name)  # on every line of the call from here
        sends_keys = bool(self.carrier.capabilities.send_dtmf)
        try:
            face = RealtimeFace(self.upstream.dialect, self.agent, start.codec, send_dtmf=sends_keys)
        except ValueError as exc:
            self.log.error("codec_unsupported", codec=start.codec.name, sample_rate=start.codec.sample_rate,
                           error=str(exc))
            self.end("carrier_error", "the stream's codec cannot be passed to the Realtime session")
            return False
        self.call.stream_started(start.codec, self.now())
        if start.parameters.get("amd") == "1":  # the carrier says later who answered: answered_by
            self.call.expect_answer(self.now())
        self.recorder = recorder_for(state.settings.recording, start.call_id, start.codec, self.now(),
                                     self.started_wall)
        context = CallContext(start.call_id, self.carrier.name, start.parameters.get("from"),
                              start.parameters.get("to"))
        self.tools = CallTools(toolbox_for(state, self.agent), context, self.tool_done,
                               send_digits=self.send_digits if sends_keys else None)
        self.log.info("call_started", upstream=self.upstream.describe(), dialect=self.upstream.dialect,
                      codec=start.codec.name, agent=self.agent.name)
        self.link = UpstreamLink(self.upstream, face, self.log, self.upstream_event, self.upstream_change,
                                 claim=state.warm and state.warm.claimer(start.call_id, self.upstream, face))
        self.upstream_task = asyncio.create_task(self.link.run(), name=f"upstream-{start.call_id}")
        self.monitor_task = asyncio.create_task(self.monitor(), name=f"monitor-{start.call_id}")
        return True

    async def violation(self, violation: ProtocolViolation) -> None:
        metrics.CARRIER_ERRORS.labels(self.carrier.name, violation.kind).inc()
        await self.perform(self.call.carrier_violation(violation, self.now()))

    # --- the upstream side: the link's two callbacks -------------------------------------------

    async def upstream_event(self, event: UpstreamEvent, received: float) -> None:
        actions = self.call.upstream_event(event, received)
        if actions:
            await self.perform(actions, received)

    async def upstream_change(self, change: SessionChange) -> None:
        call, now = self.call, self.now()
        if type(change) is Opened:
            if change.replacement:
                self.log.info("upstream_reconnected", reason=change.reason, detail=change.detail,
                              reconnects=call.stats.reconnects, recycles=call.stats.recycles)
                await self.perform(call.upstream_reopened(now, age_ms=change.age_s * 1000.0))
            else:
                await self.perform(call.upstream_opened(now, configured=change.configured,
                                                        age_ms=change.age_s * 1000.0))
        elif type(change) is Closed:
            await self.perform(call.upstream_closed(change.code, change.reason, now))
        elif type(change) is Failed:
            await self.perform(call.upstream_failed(change.detail, now))

    # --- the housekeeping task -----------------------------------------------------------------

    async def monitor(self) -> None:
        call = self.call
        while not call.ended:
            await asyncio.sleep(call.tick_interval_s(self.now()))
            link = self.link
            actions = call.tick(self.now(), carrier_backed_up=backed_up(self.carrier_transport),
                                upstream_backed_up=link is not None and link.backed_up())
            if actions:
                await self.perform(actions)

    # --- performing the call's actions ---------------------------------------------------------

    async def perform(self, actions: tuple[Any, ...], received: float | None = None) -> None:
        for action in actions:
            side = action.side
            if side is CARRIER:
                if not self.ws.closed:
                    frame = self.face.encode(action)
                    with contextlib.suppress(ConnectionError):
                        if type(frame) is bytes:
                            await self.ws.send_frame(frame, self._audio_opcode if type(action) is PlayAudio else TEXT)
                        else:  # a face that cuts audio into fixed frames (carriers.base.Frames)
                            for data, binary in frame:
                                await self.ws.send_frame(data, BINARY if binary else TEXT)
                    if self.recorder is not None:  # agent audio and clears, when written
                        self.recorder.played(action, self._loop.time() * 1000.0)
                if received is not None and type(action) is ClearPlayback:
                    metrics.BARGE_IN_REACTION.observe((self._loop.time() * 1000.0 - received) / 1000.0)
            elif side is UPSTREAM:
                link = self.link
                if link is not None:
                    frames = link.face.encode(action)
                    if type(frames) is bytes:
                        await link.send(frames)
                    else:  # a restored conversation: one item per turn, in order
                        for frame in frames:
                            await link.send(frame)
                        if frames:
                            self.log.info("conversation_restored", turns=len(frames))
            else:
                await self.control(action)

    async def control(self, action: Any) -> None:
        kind = type(action)
        if kind is Note:
            getattr(self.log, action.level)(action.event, **action.fields)
        elif kind is RunTool:
            tools = self.tools
            result = (tools.start(action) if tools is not None
                      else ToolResult(action.call_id, error_output("No tools are available."), "failed"))
            if result is not None:  # checked and answered at once (bad arguments, a built-in)
                await self.perform(self.call.tool_result(result, self.now()))
        elif kind is TransferCall:
            if self.transfer_task is None or self.transfer_task.done():
                self.transfer_task = asyncio.create_task(self.transfer(action.destination), name="transfer")
        elif kind is Hangup:
            await self.hangup(action)
        elif kind is LeaveMessage:
            await self.leave_message(action)
        elif kind is Reconnect:
            if self.link is not None:
                self.link.request_switch(action.reason, action.detail, action.delay_s)
        elif kind is Abort:
            metrics.SEND_STALLS.labels(action.target).inc()
            if action.target == CARRIER:
                self.aborted = True
                if self.carrier_transport is not None:
                    self.carrier_transport.abort()
            elif self.link is not None:
                self.link.abort()

    # --- ending --------------------------------------------------------------------------------

    def end(self, outcome: str, reason: str) -> None:
        if self.outcome is None:
            self.outcome, self.reason = outcome, reason

    async def tool_done(self, result: ToolResult) -> None:
        """A tool task finished: its result goes to the call (`CallTools.on_result`)."""
        await self.perform(self.call.tool_result(result, self.now()))

    async def hangup(self, action: Hangup) -> None:
        self.end(action.outcome, action.reason)
        control = self.fall_back if action.fallback else self.hang_up_call if action.carrier_hangup else None
        if (control is not None and self.outcome == action.outcome and self.fallback_task is None
                and self.start is not None and not self.ws.closed and not self.aborted):
            # Shielded: the carrier may end the stream (and so this task) before its REST answer arrives.
            self.fallback_task = asyncio.create_task(control(), name="fallback" if action.fallback else "hang-up")
            await asyncio.shield(self.fallback_task)
        if not self.ws.closed and not self.aborted:
            await self.ws.close(code=1000 if action.outcome != "rejected" else 1008,
                                message=action.reason[:120].encode())

    async def shut_down(self, reason: str) -> None:
        """The gateway stops: end the call now (the drain already waited for it)."""
        self.end("drained", reason)
        with contextlib.suppress(Exception):
            await self.ws.close(code=1001, message=reason.encode())

    def flush_metrics(self) -> None:
        self.exporter.flush()

    async def finish(self) -> None:
        if self.outcome is None:
            if self.start is None:
                self.end("carrier_error", "closed before start")
            else:
                ended = self.call.carrier_closed(self.now(), "carrier closed the stream")
                self.end(ended.outcome, ended.reason)
        if self.tools is not None:
            await self.tools.cancel()
        self.call.tools_cancelled(self.now())
        tasks = [t for t in (self.upstream_task, self.monitor_task) if t is not None]
        for task in tasks:
            if not task.done():
                task.cancel()
        if self.link is not None:
            await self.link.close()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for control in (self.fallback_task, self.transfer_task):  # bounded by the REST timeout
            if control is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await control
        if not self.ws.closed:
            code = 1008 if self.outcome == "rejected" else 1000
            with contextlib.suppress(Exception):
                await self.ws.close(code=code, message=self.reason[:120].encode())
        link = self.link
        if link is not None and not self.call.session_ready and not link.failure_counted:
            # The upstream never answered: the deadline passed, or the caller gave up first.
            metrics.UPSTREAM_CONNECT_FAILURES.labels(self.state.upstream.provider).inc()
        self.exporter.flush()
        duration = time.monotonic() - self.started_at
        if self.recorder is not None:  # written in a worker thread; never raises
            self.recording = await self.recorder.finish(self.now())
        self.report(duration)


async def media_socket(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    carrier = carrier_of(state, request)
    if not carrier.verify_handshake(websocket_url(state, request, request.path), request.headers):
        metrics.TOKENS_REJECTED.labels("bad_handshake_signature").inc()
        log.warning("media_handshake_signature_invalid", remote=request.remote, carrier=carrier.name)
        raise web.HTTPForbidden(text="invalid handshake signature\n")
    # Frames stay bytes (orjson parses them as they are) and no per-message compression is offered.
    ws = web.WebSocketResponse(max_msg_size=state.settings.max_carrier_message_bytes, autoping=True,
                               decode_text=False, compress=False)
    await ws.prepare(request)
    session = MediaSession(state, carrier, ws, request.transport)
    state.call_started(session)
    try:
        await session.run()
    finally:
        state.call_ended(session, session.start.call_id if session.start and session.token_valid else None)
    return ws
