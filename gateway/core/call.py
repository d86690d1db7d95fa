"""One phone call as a state machine: events in, actions out, the time passed in. No I/O.

The media handler feeds it carrier events (audio, marks, stop) and normalised upstream events
(deltas, speech started, responses, errors) and performs the actions it returns, in order.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from gateway.core.conversation import ConversationLog
from gateway.core.events import (
    UP_AUDIO_DELTA,
    UP_AUDIO_DONE,
    UP_ERROR,
    UP_INPUT_TRANSCRIPT_DONE,
    UP_INPUT_TRANSCRIPT_FAILED,
    UP_ITEM_TRUNCATED,
    UP_OUTPUT_ITEM_ADDED,
    UP_OUTPUT_TRANSCRIPT_DELTA,
    UP_OUTPUT_TRANSCRIPT_DONE,
    UP_RESPONSE_CREATED,
    UP_RESPONSE_DONE,
    UP_SESSION_CREATED,
    UP_SESSION_UPDATED,
    UP_SPEECH_STARTED,
    UP_SPEECH_STOPPED,
    Action,
    AppendAudio,
    CancelResponse,
    ClearPlayback,
    ConfigureSession,
    Greet,
    Hangup,
    Note,
    PlayAudio,
    Reconnect,
    RestoreConversation,
    SendMark,
    TruncateItem,
)
from gateway.core.playback import PlaybackTracker
from gateway.core.stats import CallStats

# Error codes after which the session cannot go on (protocol-reference §5).
FATAL_ERROR_CODES = frozenset({
    "invalid_api_key", "insufficient_quota", "rate_limit_exceeded", "session_expired",
    "beta_api_shape_disabled", "model_not_found", "session_not_found", "server_error",
})
FATAL_ERROR_TYPES = frozenset({"authentication_error", "permission_error", "server_error"})
BENIGN_ERROR_CODES = frozenset({
    "conversation_already_has_active_response", "response_cancel_not_active",
    "item_truncate_invalid_item_id", "input_audio_buffer_commit_empty",
})
TRUNCATE_TOO_LONG = "already shorter than"
# With reconnects enabled, these end only the session: a new one carries the call on.
RECOVERABLE_ERROR_CODES = frozenset({"server_error", "session_expired"})
# After the caller's turn ends a response is on its way; a session is not renewed while it may come.
RESPONSE_GRACE_MS = 3000.0

NOTHING: tuple[Action, ...] = ()


def b64_size(payload: str) -> int:
    """Decoded size of a base64 string from its length alone: no decoding."""
    n = len(payload)
    if n < 4:
        return 0
    return (n >> 2) * 3 - (payload[-1] == "=") - (payload[-2] == "=")


def b64_audio_ms(payload: str) -> float:
    """Duration of base64 G.711 audio (8 bytes per ms)."""
    return b64_size(payload) / 8.0


class Call:
    """The decisions of one call. `now` is always milliseconds on a monotonic clock."""

    def __init__(
        self,
        *,
        interrupts_itself: bool = True,
        greeting: str | None = None,
        max_buffered_ms: float = 5000.0,
        max_reconnects: int = 0,
    ) -> None:
        self.interrupts_itself = interrupts_itself  # the session cancels its own response on speech
        self.greeting = greeting
        self.max_buffered_ms = max_buffered_ms
        self.playback = PlaybackTracker()
        self.stats = CallStats()
        self.upstream_ready = False
        self.ended = False
        self.active_response_id: str | None = None
        self._dropped_responses: deque[str] = deque(maxlen=16)
        self._buffered: deque[str] = deque()
        self._buffered_ms = 0.0
        self._inbound_ms = 0.0  # caller audio received so far: the upstream's input timeline
        self._speech_stopped_at: float | None = None  # when the caller's turn ended, on our clock
        self._awaiting_first_audio = False
        self._first_mark: tuple[str, float] | None = None  # first answer chunk of the turn: (mark, ms)
        self.max_reconnects = max_reconnects  # upstream sessions lost and replaced before giving up; 0: none
        self.conversation = ConversationLog()  # what a replacement session is told
        self._caller_speaking = False
        self._turn_ended_at: float | None = None  # the caller's turn ended; no response created yet
        self._input_base_ms = 0.0  # caller audio received before the current session's input timeline

    # --- carrier side --------------------------------------------------------------------------

    def carrier_audio(self, payload: str, now: float) -> tuple[Action, ...]:
        ms = b64_audio_ms(payload)
        self._inbound_ms += ms
        self.stats.frames_in += 1
        self.stats.audio_in_ms += ms
        if self.upstream_ready:
            return (AppendAudio(payload),)
        self._buffered.append(payload)
        self._buffered_ms += ms
        while self._buffered_ms > self.max_buffered_ms and self._buffered:
            self._buffered_ms -= b64_audio_ms(self._buffered.popleft())
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
        return NOTHING

    def carrier_dtmf(self, digit: str, now: float) -> tuple[Action, ...]:
        self.stats.dtmf += 1
        return (Note("dtmf", fields={"digit": digit}),)

    def carrier_stop(self, now: float) -> tuple[Action, ...]:
        self.ended = True
        return (Hangup("completed", "caller hung up"),)

    # --- upstream side -------------------------------------------------------------------------

    def upstream_opened(self, now: float) -> tuple[Action, ...]:
        """The Realtime socket is open: configure it, greet, and flush the audio that waited."""
        self.upstream_ready = True
        actions: list[Action] = [ConfigureSession()]
        if self.greeting:
            actions.append(Greet(self.greeting))
        actions.extend(AppendAudio(p) for p in self._buffered)
        self._buffered.clear()
        self._buffered_ms = 0.0
        return tuple(actions)

    def upstream_closed(self, code: int | None, reason: str, now: float) -> tuple[Action, ...]:
        detail = f"code {code}, {reason}" if reason else f"code {code}"
        if self.max_reconnects and not self.ended:
            return self.upstream_lost("closed", f"upstream closed the session ({detail})", now)
        self.upstream_ready = False
        if self.ended:
            return NOTHING
        self.ended = True
        return (Hangup("upstream_error", f"upstream closed the session ({detail})"),)

    # --- losing and replacing the upstream session ---------------------------------------------

    def upstream_lost(self, reason: str, detail: str, now: float) -> tuple[Action, ...]:
        """The session is gone: stop what the caller hears of it, then ask for a new one, or hang up once
        `max_reconnects` are spent. Caller audio waits in the pre-connect buffer meanwhile."""
        if self.ended:
            return NOTHING
        if self.stats.reconnects >= self.max_reconnects:
            self.ended = True
            self.upstream_ready = False
            return (Hangup("upstream_error", f"{detail}; gave up after {self.stats.reconnects} reconnects"),)
        self.stats.reconnects += 1
        actions = self._leave_session(now)
        actions.append(Note("upstream_lost", "warning", {"reason": reason, "detail": detail,
                                                        "reconnect": self.stats.reconnects}))
        actions.append(Reconnect(reason, detail))
        return tuple(actions)

    def between_turns(self, now: float) -> bool:
        """A quiet moment: no response active or due, nothing playing, the caller not speaking."""
        if not self.upstream_ready or self.ended or self.active_response_id is not None or self._caller_speaking:
            return False
        if self._turn_ended_at is not None and now - self._turn_ended_at < RESPONSE_GRACE_MS:
            return False
        return not self.playback.is_playing(now)

    def recycle(self, now: float) -> tuple[Action, ...]:
        """Renew the session before its duration cap, only between turns; the conversation is carried over."""
        if not self.between_turns(now):
            return NOTHING
        self.stats.recycles += 1
        self._leave_session(now)
        return (Note("session_recycle", fields={"turns": len(self.conversation)}),
                Reconnect("recycle", "session renewed before its duration cap"))

    def upstream_reopened(self, now: float) -> tuple[Action, ...]:
        """A replacement session is open: configure it, restore the conversation, flush the waiting audio."""
        self.upstream_ready = True
        self._input_base_ms = self._inbound_ms - self._buffered_ms  # the new session's input starts here
        actions: list[Action] = [ConfigureSession(), RestoreConversation(self.conversation.replay())]
        actions.extend(AppendAudio(p) for p in self._buffered)
        self._buffered.clear()
        self._buffered_ms = 0.0
        return tuple(actions)

    def _leave_session(self, now: float) -> list[Action]:
        """Forget the session's live state: its playback (cleared at the carrier), response and turn."""
        actions: list[Action] = []
        if self.playback.is_playing(now):
            actions.append(ClearPlayback())
        for item in self.playback.heard(now):
            if item.heard_ms < item.sent_ms:
                self.conversation.cut(item.item_id, item.heard_ms, item.sent_ms)
        self.playback.clear()
        if self.active_response_id is not None:
            self._dropped_responses.append(self.active_response_id)
            self.active_response_id = None
        self.upstream_ready = False
        self._caller_speaking = False
        self._turn_ended_at = None
        self._awaiting_first_audio = False
        self._first_mark = None
        return actions

    def upstream_event(self, kind: str, event: dict[str, Any], now: float) -> tuple[Action, ...]:
        if kind == UP_AUDIO_DELTA:
            return self._audio_delta(event, now)
        if kind == UP_SPEECH_STARTED:
            self._caller_speaking = True
            self.conversation.user_turn(event.get("item_id"))
            return self._speech_started(event, now)
        if kind == UP_SPEECH_STOPPED:
            # audio_end_ms is on the upstream's input timeline; the caller stopped that long before
            # the newest audio we received.
            end_ms = event.get("audio_end_ms")
            received_ms = self._inbound_ms - self._input_base_ms
            behind = received_ms - end_ms if isinstance(end_ms, (int, float)) else 0.0
            self._speech_stopped_at = now - max(0.0, behind)
            self._caller_speaking = False
            self._turn_ended_at = now
            self._awaiting_first_audio = True
            self._first_mark = None
            self.stats.turns += 1
            return NOTHING
        if kind == UP_RESPONSE_CREATED:
            response = event.get("response") or {}
            self.active_response_id = response.get("id")
            self._turn_ended_at = None
            return NOTHING
        if kind == UP_RESPONSE_DONE:
            return self._response_done(event)
        if kind == UP_AUDIO_DONE:
            item_id = event.get("item_id")
            if isinstance(item_id, str):
                self.playback.audio_done(item_id)
            if self.playback.unmarked_ms > 0:  # the end of an answer is always marked
                return (SendMark(self.playback.mark()),)
            return NOTHING
        if kind == UP_ERROR:
            return self._error(event, now)
        if kind == UP_OUTPUT_TRANSCRIPT_DONE or kind == UP_INPUT_TRANSCRIPT_DONE:
            line = {"role": "assistant" if kind == UP_OUTPUT_TRANSCRIPT_DONE else "caller",
                    "text": str(event.get("transcript") or ""), "item_id": event.get("item_id")}
            self.stats.transcript.append(line)
            self.conversation.transcript("assistant" if kind == UP_OUTPUT_TRANSCRIPT_DONE else "user",
                                         line["item_id"], line["text"])
            return (Note("transcript", fields=line),)
        if kind == UP_INPUT_TRANSCRIPT_FAILED:
            return (Note("transcription_failed", "warning", {"error": event.get("error")}),)
        if kind == UP_ITEM_TRUNCATED:
            return (Note("item_truncated", fields={"item_id": event.get("item_id"),
                                                   "audio_end_ms": event.get("audio_end_ms")}),)
        if kind in (UP_SESSION_CREATED, UP_SESSION_UPDATED):
            session = event.get("session") or {}
            return (Note(kind.replace(".", "_"), "debug", {"session_id": session.get("id")}),)
        if kind == UP_OUTPUT_TRANSCRIPT_DELTA:
            self.conversation.assistant_delta(event.get("item_id"), event.get("delta"))
            return NOTHING
        if kind == UP_OUTPUT_ITEM_ADDED:
            item = event.get("item")
            if isinstance(item, dict) and item.get("role") == "assistant":
                self.conversation.assistant_turn(item.get("id"))
            return NOTHING
        return NOTHING

    # --- the decisions -------------------------------------------------------------------------

    def _audio_delta(self, event: dict[str, Any], now: float) -> tuple[Action, ...]:
        response_id = event.get("response_id")
        if response_id in self._dropped_responses:
            self.stats.stale_deltas_dropped += 1
            return NOTHING
        delta = event.get("delta")
        item_id = event.get("item_id")
        if not isinstance(delta, str) or not isinstance(item_id, str):
            return (Note("malformed_upstream_event", "warning", {"type": event.get("type")}),)
        ms = b64_audio_ms(delta)
        content_index = event.get("content_index", 0)
        first = self._awaiting_first_audio
        # The first chunk of an answer is always marked: its echo times what the caller heard first.
        mark = self.playback.sent(item_id, ms, now, content_index=content_index if isinstance(content_index, int)
                                  else 0, response_id=response_id, mark=True if first else None)
        self.stats.frames_out += 1
        self.stats.audio_out_ms += ms
        if first:
            self._awaiting_first_audio = False
            if self._speech_stopped_at is not None:
                self.stats.turn_latencies_ms.append(now - self._speech_stopped_at)
                self._first_mark = (mark, ms)  # type: ignore[assignment]
        if mark is None:
            return (PlayAudio(delta),)
        return (PlayAudio(delta), SendMark(mark))

    def _speech_started(self, event: dict[str, Any], now: float) -> tuple[Action, ...]:
        actions: list[Action] = []
        playing = self.playback.is_playing(now)
        heard = self.playback.heard(now)
        response_id = self.active_response_id
        if playing:
            actions.append(ClearPlayback())
        if response_id is not None:
            if not self.interrupts_itself:
                actions.append(CancelResponse(response_id))
            self._dropped_responses.append(response_id)
            self.active_response_id = None
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
        self.playback.clear()
        self._awaiting_first_audio = False
        self._first_mark = None
        return tuple(actions)

    def _response_done(self, event: dict[str, Any]) -> tuple[Action, ...]:
        response = event.get("response") or {}
        if response.get("id") == self.active_response_id:
            self.active_response_id = None
        status = str(response.get("status") or "unknown")
        self.stats.count_response(status, response.get("usage"))
        if status == "failed":
            details = response.get("status_details") or {}
            return (Note("response_failed", "warning", {"details": details}),)
        return NOTHING

    def _error(self, event: dict[str, Any], now: float = 0.0) -> tuple[Action, ...]:
        error = event.get("error") or {}
        code = error.get("code")
        etype = error.get("type")
        message = str(error.get("message") or "")
        self.stats.upstream_errors.append(str(code or etype or "unknown"))
        fields = {"code": code, "error_type": etype, "message": message, "param": error.get("param")}
        if TRUNCATE_TOO_LONG in message:
            self.stats.truncates_rejected += 1
            return (Note("truncate_rejected", "warning", fields),)
        if self.max_reconnects and (code in RECOVERABLE_ERROR_CODES or etype == "server_error"):
            reason = code if code in RECOVERABLE_ERROR_CODES else "server_error"  # a bounded label
            lost = self.upstream_lost(reason, f"upstream error: {code or etype}", now)
            return (Note("upstream_error", "error", fields), *lost)
        if code in FATAL_ERROR_CODES or (code is None and etype in FATAL_ERROR_TYPES):
            self.ended = True
            return (Note("upstream_error", "error", fields),
                    Hangup("upstream_error", f"fatal upstream error: {code or etype}"))
        level = "info" if code in BENIGN_ERROR_CODES else "warning"
        return (Note("upstream_error", level, fields),)
