"""One phone call as a state machine: typed events in, actions out, the time passed in. No I/O.

The media handler feeds it carrier events (audio, marks, dtmf, stop, violations) and upstream events
(deltas, speech started, responses, errors), as the faces decoded them, plus the upstream session's
life (opened, closed, failed) and a housekeeping tick; it performs the actions returned, in order.
The session's lifecycle (losing, replacing and renewing it, the stall watch) is in `SessionKeeping`;
function calls and the built-ins that end or move the call are in `ToolKeeping`; key presses in
`KeypadKeeping`; the silence timeouts in `IdleKeeping`; who answered an outbound call in `AnsweringKeeping`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

from gateway.core.answering import AnsweringKeeping
from gateway.core.codec import PCMU, Codec, b64_size
from gateway.core.conversation import ConversationLog
from gateway.core.events import (
    BENIGN,
    FATAL,
    RECOVERABLE,
    TRUNCATE_TOO_LONG,
    Action,
    AppendAudio,
    AudioDelta,
    AudioDone,
    CancelResponse,
    ClearPlayback,
    Hangup,
    ItemAdded,
    ItemTruncated,
    Note,
    PlayAudio,
    ProtocolViolation,
    ResponseCreated,
    ResponseDone,
    SendMark,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    TranscriptDelta,
    TranscriptDone,
    TranscriptFailed,
    TruncateItem,
    UpstreamError,
    UpstreamEvent,
    UpstreamUnreadable,
)
from gateway.core.idle import IdleKeeping, IdlePolicy
from gateway.core.keypad import Keypad, KeypadKeeping
from gateway.core.lifecycle import NOTHING, SessionKeeping
from gateway.core.playback import PlaybackTracker
from gateway.core.stats import CallStats
from gateway.core.tools import ToolKeeping
from gateway.core.watch import FrameRate

LOGGED_VIOLATIONS = 5  # carrier protocol violations logged per call; the rest are only counted


class Call(AnsweringKeeping, KeypadKeeping, IdleKeeping, ToolKeeping, SessionKeeping):
    """The decisions of one call. `now` is always milliseconds on a monotonic clock."""

    def __init__(
        self,
        *,
        interrupts_itself: bool = True,
        greeting: str | None = None,
        max_buffered_ms: float = 5000.0,
        max_reconnects: int = 0,
        retry_backoff_s: float = 0.5,
        session_max_s: float = 0.0,
        stall_timeout_s: float = 10.0,
        max_frames_per_second: int = 0,
        marks: bool = True,
        whole_frames: bool = False,
        codec: Codec = PCMU,
        ready_timeout_s: float = 0.0,
        sensitive_tools: frozenset[str] = frozenset(),
        keypad: Keypad = Keypad(),  # noqa: B008 - frozen
        commit_turns: bool = False,  # turn detection is off: keypad.commit_key ends the caller's turn
        idle: IdlePolicy = IdlePolicy(),  # noqa: B008 - frozen
    ) -> None:
        super().__init__(max_reconnects=max_reconnects, retry_backoff_s=retry_backoff_s,
                         session_max_s=session_max_s, stall_timeout_s=stall_timeout_s,
                         ready_timeout_s=ready_timeout_s)
        self.interrupts_itself = interrupts_itself  # the session cancels its own response on speech
        self.greeting = greeting
        self.max_buffered_ms = max_buffered_ms
        self.playback = PlaybackTracker(marks=marks)
        self.marks = marks
        # The carrier face cuts audio into fixed frames and holds back a partial one: every answer then
        # ends with a last mark, which tells the face to send it (padded), even right after a mark.
        self.whole_frames = whole_frames
        self.stats = CallStats()
        self.rate = FrameRate(max_frames_per_second)
        self.max_frames_per_second = max_frames_per_second
        self.bytes_per_ms = codec.bytes_per_ms
        self.active_response_id: str | None = None
        self._dropped_responses: deque[str] = deque(maxlen=16)
        self._buffered: deque[str] = deque()
        self._buffered_ms = 0.0
        self._inbound_ms = 0.0  # caller audio received so far: the upstream's input timeline
        self._speech_stopped_at: float | None = None  # when the caller's turn ended, on our clock
        self._awaiting_first_audio = False
        self._first_mark: tuple[str, float] | None = None  # first answer chunk of the turn: (mark, ms)
        self.conversation = ConversationLog()  # what a replacement session is told
        self._caller_speaking = False
        self._turn_ended_at: float | None = None  # the caller's turn ended; no response created yet
        self._input_base_ms = 0.0  # caller audio received before the current session's input timeline
        self._init_tools(sensitive_tools)
        self._init_keypad(keypad, commit_turns)
        self._init_idle(idle)
        self._init_answering()

    def set_codec(self, codec: Codec) -> None:
        """The stream's codec, once its start message names it (before any audio)."""
        self.bytes_per_ms = codec.bytes_per_ms

    def stream_started(self, codec: Codec, now: float) -> None:
        """The stream was accepted: its codec is known, and the ready deadline runs from now."""
        self.set_codec(codec)
        self.stream_started_at = now

    # --- carrier side --------------------------------------------------------------------------

    def carrier_audio(self, payload: str, now: float) -> tuple[Action, ...]:
        if not self.rate.allow(now):
            self.stats.frames_rate_limited += 1
            if self.stats.frames_rate_limited == 1:
                return (Note("carrier_rate_limited", "warning", {
                    "max_frames_per_second": self.max_frames_per_second,
                    "note": "audio over the limit is dropped and counted; logged once per call"}),)
            return NOTHING
        if self.input_held:  # who answered is not known yet (or a machine did): the model does not hear it
            self.stats.frames_amd_held += 1
            return NOTHING
        ms = b64_size(payload) / self.bytes_per_ms
        self._inbound_ms += ms
        self.stats.frames_in += 1
        self.stats.audio_in_ms += ms
        if self.upstream_ready:
            return (AppendAudio(payload),)
        self._buffered.append(payload)
        self._buffered_ms += ms
        while self._buffered_ms > self.max_buffered_ms and self._buffered:
            self._buffered_ms -= b64_size(self._buffered.popleft()) / self.bytes_per_ms
            self.stats.frames_dropped += 1
        return NOTHING

    def carrier_mark(self, name: str, now: float) -> tuple[Action, ...]:
        if not self.playback.mark_echoed(name, now):
            self.stats.marks_flushed += 1
            return NOTHING
        self.stats.marks_played += 1
        first = self._first_mark
        if first is not None and first[0] == name and self._speech_stopped_at is not None:
            # The echo comes when the chunk has played: it started being heard `ms` earlier.
            self._first_mark = None
            self.stats.heard_latencies_ms.append(now - first[1] - self._speech_stopped_at)
        if self.departure is not None:  # the end of a goodbye (or a hand-off line) may just have played
            return tuple(self._departure_step(now))
        return NOTHING

    def carrier_stop(self, now: float) -> tuple[Action, ...]:
        self.ended = True
        return (self.carrier_closed(now),)

    def carrier_closed(self, now: float, reason: str = "caller hung up") -> Hangup:
        """How the call ended when the caller's side ended it: completed, or abandoned when the agent
        was never on the line (no session answered yet)."""
        if self.stream_started_at is not None and not self.session_ready:
            return Hangup("abandoned", f"{reason} before the agent answered (upstream not ready)")
        return Hangup("completed", reason)

    def carrier_violation(self, violation: ProtocolViolation, now: float) -> tuple[Action, ...]:
        """A frame we could not use: counted by kind; the first few of a call are logged."""
        errors = self.stats.carrier_errors
        errors[violation.kind] = errors.get(violation.kind, 0) + 1
        seen = self.stats.carrier_errors_total
        if seen > LOGGED_VIOLATIONS:
            return NOTHING
        return (Note("carrier_frame_ignored", "warning", {"kind": violation.kind, "detail": violation.detail,
                                                          "more_not_logged": seen == LOGGED_VIOLATIONS}),)

    # --- upstream side -------------------------------------------------------------------------

    def upstream_event(self, event: UpstreamEvent, now: float) -> tuple[Action, ...]:
        if type(event) is AudioDelta:
            return self._audio_delta(event, now)
        handler = _HANDLERS.get(type(event))
        return NOTHING if handler is None else handler(self, event, now)

    # --- the decisions -------------------------------------------------------------------------

    def _audio_delta(self, event: AudioDelta, now: float) -> tuple[Action, ...]:
        response_id = event.response_id
        if response_id in self._dropped_responses:
            self.stats.stale_deltas_dropped += 1
            return NOTHING
        delta = event.payload
        ms = b64_size(delta) / self.bytes_per_ms
        first = self._awaiting_first_audio
        # The first chunk of an answer is always marked: its echo times what the caller heard first.
        mark = self.playback.sent(event.item_id, ms, now, content_index=event.content_index,
                                  response_id=response_id, mark=True if first else None)
        self.stats.frames_out += 1
        self.stats.audio_out_ms += ms
        if first:
            self._awaiting_first_audio = False
            if self._speech_stopped_at is not None:
                self.stats.turn_latencies_ms.append(now - self._speech_stopped_at)
                if mark is not None:
                    self._first_mark = (mark, ms)
        if mark is None:
            return (PlayAudio(delta),)
        return (PlayAudio(delta), SendMark(mark))

    def _speech_started(self, event: SpeechStarted, now: float) -> tuple[Action, ...]:
        self._caller_speaking = True
        self._tools_speech_started()
        self.conversation.user_turn(event.item_id)
        actions = self._idle_caller(now)
        playing = self.playback.is_playing(now)
        heard = self.playback.heard(now)
        response_id = self.active_response_id
        if playing:
            actions.append(ClearPlayback())
        if response_id is not None:
            if not self.interrupts_itself:
                actions.append(CancelResponse(response_id))
            self._drop_active_response()
        truncated = []
        for item in heard:
            # A fully heard, finished item needs no truncate; anything cut short or unfinished does.
            if item.sent_ms > 0 and (item.heard_ms < item.sent_ms or not item.audio_done):
                end_ms = math.floor(item.heard_ms)
                actions.append(TruncateItem(item.item_id, item.content_index, end_ms))
                truncated.append({"item_id": item.item_id, "heard_ms": end_ms, "sent_ms": round(item.sent_ms)})
                self.stats.truncations.append((item.item_id, end_ms, item.sent_ms))
                self.conversation.cut(item.item_id, end_ms, item.sent_ms)
        if playing or response_id is not None:
            self.stats.barge_ins += 1
            actions.append(Note("barge_in", fields={"playing": playing, "response_id": response_id,
                                                    "truncated": truncated}))
        self.playback.clear(now)
        self._awaiting_first_audio = False
        self._first_mark = None
        actions.extend(self._after_tools(now))  # held tool outputs go now; the caller's turn answers them
        return tuple(actions)

    def _speech_stopped(self, event: SpeechStopped, now: float) -> tuple[Action, ...]:
        # audio_end_ms is on the upstream's input timeline; the caller stopped that long before the
        # newest audio we received.
        end_ms = event.audio_end_ms
        received_ms = self._inbound_ms - self._input_base_ms
        behind = received_ms - end_ms if end_ms is not None else 0.0
        self._speech_stopped_at = now - max(0.0, behind)
        self._caller_speaking = False
        self._turn_ended_at = now
        self._idle_caller(now)
        self._awaiting_first_audio = True
        self._first_mark = None
        self.stats.turns += 1
        return NOTHING

    def _response_created(self, event: ResponseCreated, now: float) -> tuple[Action, ...]:
        self.active_response_id = event.response_id
        self._turn_ended_at = None
        self._tools_response_created()
        return NOTHING

    def _response_done(self, event: ResponseDone, now: float) -> tuple[Action, ...]:
        if event.response_id == self.active_response_id:
            self.active_response_id = None
        self._idle_answered(now)
        self.stats.count_response(event.status, event.usage)
        after = self._after_tools(now)
        if event.status == "failed":
            return (Note("response_failed", "warning", {"details": event.details or {}}), *after)
        return tuple(after)

    def _audio_done(self, event: AudioDone, now: float) -> tuple[Action, ...]:
        if event.item_id is not None:
            self.playback.audio_done(event.item_id)
        if self.marks and (self.playback.unmarked_ms > 0 or self.whole_frames):  # an answer's end is marked
            return (SendMark(self.playback.mark(), last=True),)
        return NOTHING

    def _transcript_done(self, event: TranscriptDone, now: float) -> tuple[Action, ...]:
        role = "assistant" if event.role == "assistant" else "user"
        line = {"role": "assistant" if role == "assistant" else "caller",
                "text": self.redact(event.text) if self._secrets else event.text, "item_id": event.item_id}
        self.stats.transcript.append(line)
        self.conversation.transcript(role, event.item_id, event.text)
        return (Note("transcript", fields=line),)

    def _transcript_delta(self, event: TranscriptDelta, now: float) -> tuple[Action, ...]:
        self.conversation.assistant_delta(event.item_id, event.text)
        return NOTHING

    def _item_added(self, event: ItemAdded, now: float) -> tuple[Action, ...]:
        if event.role == "assistant":
            self.conversation.assistant_turn(event.item_id)
        return NOTHING

    def _transcript_failed(self, event: TranscriptFailed, now: float) -> tuple[Action, ...]:
        return (Note("transcription_failed", "warning", {"error": event.error}),)

    def _item_truncated(self, event: ItemTruncated, now: float) -> tuple[Action, ...]:
        return (Note("item_truncated", fields={"item_id": event.item_id, "audio_end_ms": event.audio_end_ms}),)

    def _session_created(self, event: SessionCreated, now: float) -> tuple[Action, ...]:
        self.session_answered(now)
        return (Note("session_created", "debug", {"session_id": event.session_id}),)

    def _session_updated(self, event: SessionUpdated, now: float) -> tuple[Action, ...]:
        self.session_answered(now)
        return (Note("session_updated", "debug", {"session_id": event.session_id}),)

    def _unreadable(self, event: UpstreamUnreadable, now: float) -> tuple[Action, ...]:
        self.stats.upstream_errors.append(event.label)
        return (Note("upstream_event_unreadable", "warning", {"reason": event.label, "type": event.event_type,
                                                              "size": event.size}),)

    def _error(self, event: UpstreamError, now: float) -> tuple[Action, ...]:
        self.stats.upstream_errors.append(event.label)
        fields = {"code": event.code, "error_type": event.error_type, "message": event.message,
                  "param": event.param}
        severity = event.severity
        if severity == TRUNCATE_TOO_LONG:
            self.stats.truncates_rejected += 1
            return (Note("truncate_rejected", "warning", fields),)
        if severity == RECOVERABLE and self.max_reconnects:
            lost = self.upstream_lost(event.label, f"upstream error: {event.code or event.error_type}", now)
            return (Note("upstream_error", "error", fields), *lost)
        if severity in (FATAL, RECOVERABLE):
            if self.ended:
                return (Note("upstream_error", "error", fields),)
            self.ended = True
            return (Note("upstream_error", "error", fields),
                    Hangup("upstream_error", f"fatal upstream error: {event.code or event.error_type}", fallback=True))
        return (Note("upstream_error", "info" if severity == BENIGN else "warning", fields),)

    # --- housekeeping, with the answer's, the departure's, the keypad's and the silence's clocks -------

    def tick(self, now: float, *, carrier_backed_up: bool, upstream_backed_up: bool) -> tuple[Action, ...]:
        actions = super().tick(now, carrier_backed_up=carrier_backed_up, upstream_backed_up=upstream_backed_up)
        if actions or self.ended:
            return actions
        if self.answer_pending:
            return tuple(self._answer_due(now))  # nothing else runs until the callee is known
        if self.departure is not None:
            return tuple(self._departure_step(now))  # without marks the clock says when the goodbye played
        return (*self._keypad_due(now), *self._idle_step(now))

    def tick_interval_s(self, now: float | None = None) -> float:
        interval = super().tick_interval_s(now)
        if now is None:
            return interval
        for waiting in (self.answer_tick_s(now), self.departure_tick_s(now), self.keypad_tick_s(now),
                        self.idle_tick_s(now)):
            if waiting is not None:
                interval = min(interval, waiting)
        return interval


_HANDLERS: dict[type, Callable[[Call, Any, float], tuple[Action, ...]]] = {
    SpeechStarted: Call._speech_started,
    SpeechStopped: Call._speech_stopped,
    ResponseCreated: Call._response_created,
    ResponseDone: Call._response_done,
    AudioDone: Call._audio_done,
    TranscriptDone: Call._transcript_done,
    TranscriptDelta: Call._transcript_delta,
    ItemAdded: Call._item_added,
    TranscriptFailed: Call._transcript_failed,
    ItemTruncated: Call._item_truncated,
    SessionCreated: Call._session_created,
    SessionUpdated: Call._session_updated,
    ToolCall: Call._tool_call,
    UpstreamError: Call._error,
    UpstreamUnreadable: Call._unreadable,
}
