"""The carrier's call control as a call uses it: the fallback when the upstream fails, the hang-up when
the agent ends the call, the transfer to an allow-listed destination, keys sent to the far end (send_dtmf);
and for the call API and the calls the gateway places: the hang-up and transfer of `DELETE /calls/{id}` and
`POST /calls/{id}/transfer`, the record of a placed call, the answering machine's verdict and the voicemail
message said by the carrier. A part of `MediaSession` (its base class), which performs the call's control
actions with these."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSMsgType, web

from gateway.agent_settings import Agent
from gateway.agents.profile import Profile
from gateway.carriers.base import DTMF_STREAM, CallControlUnavailable, Carrier, StreamFace
from gateway.core.call import Call
from gateway.core.events import Hangup, LeaveMessage, SendDigits, StreamStart
from gateway.observability import metrics
from gateway.state import GatewayState
from gateway.tools.builtins import DigitsNotSent


class CallControl:
    # what the MediaSession provides
    state: GatewayState
    carrier: Carrier
    face: StreamFace
    call: Call
    ws: web.WebSocketResponse
    start: StreamStart | None
    agent: Agent
    profile: Profile | None
    log: Any
    fallback: str | None
    outcome: str | None
    reason: str
    aborted: bool
    transfer_task: asyncio.Task[None] | None
    outbound: Any  # outbound.calls.OutboundCall | None
    now: Callable[[], float]
    perform: Callable[..., Awaitable[None]]
    fallback_task: asyncio.Task[None] | None
    end: Callable[[str, str], None]
    hangup: Callable[[Hangup], Awaitable[None]]

    async def fall_back(self) -> None:
        """The upstream failed: have the carrier play the apology (or dial the fallback number) instead of
        leaving the caller in silence; the stream is closed afterwards either way."""
        start = self.start
        if start is None:
            return
        fallback = self.state.settings.fallback
        try:
            await self.carrier.fall_back(start, fallback)
        except CallControlUnavailable as exc:
            self.fallback = "unconfigured"
            self.log.warning("fallback_unavailable", reason=str(exc), note="closing the stream; the carrier hangs up")
        except Exception as exc:
            self.fallback = "failed"
            self.log.error("fallback_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        else:
            self.fallback = "redirected"
            self.log.info("fallback_redirected", dial=fallback.number is not None)
        metrics.FALLBACKS.labels(self.fallback).inc()

    async def transfer(self, name: str) -> None:
        """Move the live call to the allow-listed destination `name` through the carrier's call control."""
        tools, start = self.agent.tools, self.start
        destination = tools.transfer_call.destination(name) if tools.transfer_call is not None else None
        try:
            if destination is None or start is None:
                raise CallControlUnavailable(f"no transfer destination named {name!r}")
            await self.carrier.transfer(start, destination.target)
        except CallControlUnavailable as exc:
            result = "unavailable"
            self.log.warning("transfer_unavailable", destination=name, reason=str(exc))
        except Exception as exc:
            result = "failed"
            self.log.error("transfer_request_failed", destination=name, error=f"{type(exc).__name__}: {exc}"[:300])
        else:
            result = "transferred"
        actions = self.call.transfer_result(result, self.now())
        if result != "transferred":
            await self.perform(actions)
            return
        # Ours even when the carrier ended the stream (a `stop`) before its REST answer came.
        self.outcome, self.reason = "transferred", f"transferred to {name}"
        self.log.info("call_transferred", destination=name)
        if not self.ws.closed and not self.aborted:
            await self.ws.close(code=1000, message=self.reason[:120].encode())

    async def send_digits(self, digits: str) -> None:
        """Play keys to the far end, on the stream or through the carrier's call control (as its capabilities
        say). DigitsNotSent says why not; the keys are never logged (they may be sensitive), only their count."""
        start = self.start
        if start is None or self.ws.closed or self.aborted:
            raise DigitsNotSent("the call is over")
        try:
            if self.carrier.capabilities.send_dtmf == DTMF_STREAM:
                frame = self.face.encode(SendDigits(digits))
                if type(frame) is not bytes:
                    raise TypeError("a stream face encodes keys into one text frame")
                await self.ws.send_frame(frame, WSMsgType.TEXT)
            else:
                await self.carrier.send_dtmf(start, digits)
        except CallControlUnavailable as exc:
            self.log.warning("dtmf_not_sent", keys=len(digits), reason=str(exc))
            raise DigitsNotSent(str(exc)) from None
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}".replace(digits, "*" * len(digits))  # an echo of the keys
            self.log.error("dtmf_send_failed", keys=len(digits), error=detail[:300])
            raise DigitsNotSent("the carrier did not take them") from None
        metrics.DTMF_KEYS.labels("outbound").inc(len(digits))
        self.log.info("dtmf_sent", keys=len(digits), via=self.carrier.capabilities.send_dtmf)

    async def leave_message(self, action: LeaveMessage) -> None:
        """A machine answered and the agent's voicemail is a fixed text: the carrier says it on the live call
        and hangs up (where it cannot, the call is hung up); then the stream is closed."""
        self.end(action.outcome, action.reason)
        if (self.outcome == action.outcome and self.fallback_task is None and self.start is not None
                and not self.ws.closed and not self.aborted):
            # Shielded, as the fallback is: the carrier may end the stream before its REST answer arrives.
            self.fallback_task = asyncio.create_task(self._say_message(action.text), name="voicemail")
            await asyncio.shield(self.fallback_task)
        await self.hangup(Hangup(action.outcome, action.reason))  # closes the stream

    async def _say_message(self, text: str) -> None:
        try:
            await self.carrier.say_and_hang_up(self.start, text)  # type: ignore[arg-type]
        except CallControlUnavailable as exc:
            self.log.warning("voicemail_message_unavailable", reason=str(exc), note="hanging up")
        except Exception as exc:
            self.log.error("voicemail_message_failed", error=f"{type(exc).__name__}: {exc}"[:300], note="hanging up")
        else:
            self.log.info("voicemail_message_left", via="carrier", length=len(text))
            return
        await self.hang_up_call()

    async def hang_up_call(self) -> None:
        """The agent ended the call: end it through the carrier's call control where it has one."""
        try:
            await self.carrier.hang_up(self.start)  # type: ignore[arg-type]
        except CallControlUnavailable as exc:
            self.log.info("hangup_by_closing_stream", reason=str(exc))
        except Exception as exc:
            self.log.warning("hangup_failed", error=f"{type(exc).__name__}: {exc}"[:300], note="closing the stream")

    # --- the call API and the calls the gateway places -------------------------------------------

    def attach_outbound(self, subject: str) -> bool:
        """A stream whose token named a call this process placed: the record must be of this very call (its
        CallSid, when the carrier's answer already named it), and follows the stream from now on. A record
        of another replica is not here: the token was the check. False: the stream is refused."""
        start = self.start
        record = self.state.outbound.get(subject) if start is not None and start.parameters.get("outbound") else None
        if record is None or start is None:
            return True
        if record.call_sid is not None and record.call_sid != start.call_id:
            metrics.TOKENS_REJECTED.labels("outbound_mismatch").inc()
            self.log.warning("stream_refused_outbound_mismatch", outbound_id=record.oid)
            self.end("rejected", "the stream is not the placed call's")
            self.state.release(subject)
            return False
        if record.call_sid is None:  # the stream came before the carrier's answer to the call's creation
            self.state.outbound.bind(record, start.call_id)
        record.attach(self)
        self.outbound = record
        self.log.info("outbound_call_streaming", outbound_id=record.oid, agent=record.agent,
                      machine_detection=record.machine_detection)
        return True

    def max_call_duration_s(self) -> float:
        profile = self.profile
        bound = profile.max_call_duration_s if profile is not None else None
        return bound if bound is not None else self.state.settings.max_call_duration_s

    async def answered_by(self, kind: str) -> None:
        """The carrier's answering-machine detection says who answered: human, machine or unknown."""
        record = self.outbound
        self.log.info("answered_by_result", kind=kind, outbound_id=record.oid if record is not None else None)
        if self.start is None or self.ws.closed or self.aborted:
            return
        voicemail = self.profile.voicemail if self.profile is not None else None  # what a machine answer gets
        await self.perform(self.call.answered_by(kind, voicemail, self.now()))

    async def hang_up_by_api(self) -> None:
        """DELETE /calls/{id} on a live call: the carrier ends it, then the stream is closed."""
        await self.hangup(Hangup("hung_up_by_api", "hung up through the call API", carrier_hangup=True))

    async def transfer_to(self, target: str) -> str:
        """POST /calls/{id}/transfer: move the live call to `target` (an E.164 number or a sip: URI, checked by
        the caller) through the carrier's call control. "transferred" (the stream is closed), "unavailable" or
        "failed"."""
        start = self.start
        try:
            if start is None or self.ws.closed or self.aborted:
                raise CallControlUnavailable("the call is over")
            await self.carrier.transfer(start, target)
        except CallControlUnavailable as exc:
            self.log.warning("api_transfer_unavailable", reason=str(exc))
            return "unavailable"
        except Exception as exc:
            self.log.error("api_transfer_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            return "failed"
        self.outcome, self.reason = "transferred", "transferred through the call API"
        self.log.info("call_transferred", via="api")
        if not self.ws.closed and not self.aborted:
            await self.ws.close(code=1000, message=self.reason[:120].encode())
        return "transferred"
