"""The function calls of one call: a part of `Call` (its base class), as `SessionKeeping` is.

The model calls a function (`ToolCall`, decoded by the Realtime face from
`response.function_call_arguments.done` or the function-call item that ends it): the call is recorded
and the I/O layer is asked to run it (`RunTool`). Its result comes back through `tool_result`: the
output is added to the conversation (`SendToolOutput`), held while the response that made the call is
still going (one response at a time), and the model is asked to answer it (`RequestResponse`) once
every call of that turn is answered, unless the caller started speaking since: then the output is only
added and the caller's turn answers. Outputs are in the `ConversationLog`, so a replacement session
gets them too.

The built-ins change how the call ends. An accepted `end_call` hangs up once everything the agent says
has been heard: the response that carried the call is done (the model may speak its goodbye before,
around or after the function call within it), and the playback tracker says nothing is left to play
(the echo of the mark after the last chunk; without marks, the clock estimate). No response is asked
for after end_call: the goodbye is what the model says in that response. An accepted transfer does the
same, speaks its hand-off line first when it has one (played and heard too), then asks for the
transfer (`TransferCall`). Either waits `max_wait_s` at most, then goes ahead. An idle hang-up (`IdleKeeping`)
leaves the same way, after the goodbye it asked for, and so does a voicemail message left by the model
(`AnsweringKeeping`). An accepted send_dtmf (`Listen`) asks for no response: the keys go to a phone menu,
whose answer is the next turn.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.core.events import (
    Action,
    EndCall,
    Hangup,
    Inform,
    Note,
    RequestResponse,
    RunTool,
    Say,
    SendToolOutput,
    ToolCall,
    ToolResult,
    TransferCall,
    TransferTo,
)

if TYPE_CHECKING:
    from gateway.core.conversation import ConversationLog
    from gateway.core.playback import PlaybackTracker
    from gateway.core.stats import CallStats

NOTHING: tuple[Action, ...] = ()
MAX_ARGUMENTS_KEPT = 500  # characters of a call's arguments kept for the call summary
DEPARTURE_POLL_S = 0.25  # while a hang-up or transfer waits for its audio to play: the longest tick
TRANSFER_FAILED = ("The transfer to {destination} did not go through ({result}). The caller is still on the "
                   "line with you: tell them, and offer to help another way.")


@dataclass(slots=True)
class _Running:
    name: str
    started_at: float
    speech_count: int  # the caller's turns begun when the call was made
    record: dict[str, Any]


@dataclass(slots=True)
class Departure:
    """The call is to end (kind "end": end_call; "idle": the silence timeout; "voicemail": a message left on a
    machine) or move (kind "transfer") once the agent's words have been heard."""

    kind: str
    armed_at: float
    deadline: float
    reason: str = ""
    destination: str = ""
    handoff: str | None = None
    said: bool = False  # the hand-off line was asked for
    going: bool = False  # the hang-up or the transfer was asked for


class ToolKeeping:
    # what the Call provides
    playback: PlaybackTracker
    stats: CallStats
    conversation: ConversationLog
    active_response_id: str | None
    upstream_ready: bool
    ended: bool
    _caller_speaking: bool
    redact: Callable[[str], str]  # masks the call's sensitive keypad entries (KeypadKeeping)

    def _init_tools(self, sensitive_tools: frozenset[str]) -> None:
        self.sensitive_tools = sensitive_tools  # their arguments are kept out of logs and the summary
        self._running: dict[str, _Running] = {}  # by call id
        self._seen_calls: deque[str] = deque(maxlen=64)  # a call decoded twice is run once
        self._held: list[Action] = []  # outputs waiting for the active response to end
        self._response_due = False  # answered outputs want a response once nothing is running
        self._speech_count = 0  # the caller's turns begun (speech started)
        self._awaiting_response = False  # we asked for a response that has not started yet
        self._awaiting_since = 0.0  # when
        self.departure: Departure | None = None

    # --- the model calls, the I/O layer answers --------------------------------------------------

    def _tool_call(self, event: ToolCall, now: float) -> tuple[Action, ...]:
        call_id = event.call_id
        if call_id in self._seen_calls or self.ended:
            return NOTHING
        self._seen_calls.append(call_id)
        record: dict[str, Any] = {"name": event.name, "call_id": call_id, "outcome": None, "duration_ms": None}
        fields: dict[str, Any] = {"tool": event.name, "call_id": call_id}
        if event.name not in self.sensitive_tools:
            record["arguments"] = fields["arguments"] = self.redact(event.arguments[:MAX_ARGUMENTS_KEPT])
        self.stats.tool_calls.append(record)
        self._running[call_id] = _Running(event.name, now, self._speech_count, record)
        self.conversation.function_call(event.item_id, call_id, event.name, event.arguments)
        return (Note("tool_call", fields=fields), RunTool(call_id, event.name, event.arguments))

    def tool_result(self, result: ToolResult, now: float) -> tuple[Action, ...]:
        """A tool the call asked for finished (or was refused): its output goes to the model."""
        running = self._running.pop(result.call_id, None)
        if running is None:
            return NOTHING
        duration = now - running.started_at
        running.record.update(outcome=result.outcome, duration_ms=round(duration))
        self.stats.tool_results.append((running.name, result.outcome, duration))
        if running.name == "transfer_call" and result.outcome == "refused":
            self.stats.transfers.append("refused")
        if self.ended:
            return NOTHING
        self.conversation.function_output(result.call_id, result.output)
        actions: list[Action] = [Note("tool_result", "info" if result.outcome == "ok" else "warning", {
            "tool": running.name, "call_id": result.call_id, "outcome": result.outcome,
            "duration_ms": round(duration)})]
        then = result.then
        if isinstance(then, EndCall | TransferTo) and self.departure is None:
            self._depart(then, now)
        elif running.speech_count == self._speech_count and then is None:
            self._response_due = True
        if self.upstream_ready:  # else the replacement session gets it with the replayed conversation
            self._held.append(SendToolOutput(result.call_id, result.output))
        actions.extend(self._after_tools(now))
        return tuple(actions)

    def tools_cancelled(self, now: float) -> None:
        """The call ended with tools still running: they were cancelled."""
        for running in self._running.values():
            running.record.update(outcome="cancelled", duration_ms=round(now - running.started_at))
            self.stats.tool_results.append((running.name, "cancelled", now - running.started_at))
        self._running.clear()

    def transfer_result(self, result: str, now: float) -> tuple[Action, ...]:
        """How the transfer the call asked for went: transferred (the call is over), or failed /
        unavailable: the caller is still here, and the model is told so."""
        self.stats.transfers.append(result)
        departure = self.departure
        if result == "transferred" or departure is None or self.ended:
            if result == "transferred":
                self.ended = True
            return NOTHING
        self.departure = None
        self._awaiting_response, self._awaiting_since = True, now
        return (Note("transfer_failed", "warning", {"destination": departure.destination, "result": result}),
                Inform(TRANSFER_FAILED.format(destination=departure.destination, result=result)),
                RequestResponse())

    # --- hooks the Call's handlers call ----------------------------------------------------------

    def _tools_speech_started(self) -> None:
        self._speech_count += 1
        self._response_due = False  # the caller's turn answers what the tools said

    def _tools_response_created(self) -> None:
        self._awaiting_response = False

    def _tools_session_left(self) -> None:
        self._held.clear()  # in the conversation log: replayed to the next session
        self._awaiting_response = False

    def _after_tools(self, now: float) -> list[Action]:
        """Between responses: send the held outputs, ask for the response they want, move the departure on."""
        if self.active_response_id is not None or not self.upstream_ready or self.ended:
            return []
        out = self._held
        self._held = []
        if (self._response_due and not self._running and not self._caller_speaking and self.departure is None
                and not self._awaiting_response):
            self._response_due = False
            self._awaiting_response, self._awaiting_since = True, now
            out.append(RequestResponse())
        if self.departure is not None:
            out.extend(self._departure_step(now))
        return out

    # --- leaving the call once the agent has been heard ------------------------------------------

    def _depart(self, then: EndCall | TransferTo, now: float) -> None:
        if isinstance(then, EndCall):
            self.departure = Departure("end", now, now + then.max_wait_s * 1000.0, reason=then.reason)
        else:
            self.departure = Departure("transfer", now, now + then.max_wait_s * 1000.0,
                                       destination=then.destination, handoff=then.handoff)

    def _departure_step(self, now: float) -> list[Action]:
        """Hang up (or transfer) once the agent's words have been heard, or at the deadline."""
        d = self.departure
        if d is None or d.going or self.ended:
            return []
        heard = True
        if now < d.deadline:
            if self.active_response_id is not None or self._awaiting_response or self._held:
                return []
            if d.handoff and not d.said:
                d.said = self._awaiting_response = True
                self._awaiting_since = now
                return [Say(d.handoff)]
            if self.playback.is_playing(now):
                return []
        else:
            heard = False
        d.going = True
        fields = {"heard": heard, "waited_ms": round(now - d.armed_at)}
        if d.kind == "end":
            self.ended = True
            reason = "the agent ended the call" + (f" ({d.reason[:100]})" if d.reason else "")
            return [Note("agent_ended_call", fields=fields), Hangup("agent_ended", reason, carrier_hangup=True)]
        if d.kind == "idle":
            self.ended = True
            return [Note("idle_hung_up", fields=fields), Hangup("idle", d.reason, carrier_hangup=True)]
        if d.kind == "voicemail":  # AnsweringKeeping: the message left on a machine has been heard
            self.ended = True
            return [Note("voicemail_left", fields=fields), Hangup("voicemail", d.reason, carrier_hangup=True)]
        return [Note("transfer_starting", fields={**fields, "destination": d.destination}),
                TransferCall(d.destination)]

    def departure_tick_s(self, now: float) -> float | None:
        """While a departure waits for audio to play: when to look again (None: nothing waits)."""
        d = self.departure
        if d is None or d.going:
            return None
        remaining = self.playback.remaining_ms(now) / 1000.0
        until_deadline = (d.deadline - now) / 1000.0
        return max(0.01, min(DEPARTURE_POLL_S, max(remaining, 0.02), until_deadline))

    @property
    def tools_busy(self) -> bool:
        """Tools running, outputs held, or a departure under way: not a quiet moment."""
        return bool(self._running or self._held or self.departure is not None or self._response_due)
