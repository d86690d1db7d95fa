"""The upstream session's life within a call: opened, lost, replaced, renewed, and the stall watch.

A part of `Call` (its base class), kept apart because it is about the session, not the conversation:
when a session opens it is configured and the audio that waited is flushed; when it is lost the call
asks for a new one (with backoff) or hangs up with the fallback once `max_reconnects` are spent; it is
renewed between turns once `session_max_s` old; and a socket on either side whose send buffer stops
draining is given up. `tick` is called about once a second (`tick_interval_s`) by the socket owner.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.core.events import (
    CARRIER,
    UPSTREAM,
    Abort,
    Action,
    AppendAudio,
    ClearPlayback,
    ConfigureSession,
    Hangup,
    Note,
    Reconnect,
    RestoreConversation,
)
from gateway.core.watch import StallWatch

if TYPE_CHECKING:
    from gateway.core.conversation import ConversationLog
    from gateway.core.playback import PlaybackTracker
    from gateway.core.stats import CallStats

NOTHING: tuple[Action, ...] = ()
# After the caller's turn ends a response is on its way; a session is not renewed while it may come.
RESPONSE_GRACE_MS = 3000.0
RECYCLE_POLL_S = 0.2  # once a renewal is due: how often to look for a quiet moment


class SessionKeeping:
    # what the Call provides
    playback: PlaybackTracker
    stats: CallStats
    conversation: ConversationLog
    active_response_id: str | None
    _buffered: deque[str]
    _buffered_ms: float
    _inbound_ms: float
    _input_base_ms: float
    _caller_speaking: bool
    _turn_ended_at: float | None
    _dropped_responses: deque[str]
    _awaiting_first_audio: bool
    _first_mark: tuple[str, float] | None
    tools_busy: bool
    _tools_session_left: Callable[[], None]
    _quiet_since: float | None  # silence is counted from here (IdleKeeping)
    _awaiting_response: bool  # a response was asked for and has not started (ToolKeeping)
    _awaiting_since: float
    _after_tools: Callable[[float], list[Action]]
    _opening_words: Callable[[float], list[Action]]  # what the agent says first (AnsweringKeeping)

    def __init__(self, *, max_reconnects: int, retry_backoff_s: float, session_max_s: float,
                 stall_timeout_s: float, ready_timeout_s: float = 0.0) -> None:
        self.upstream_ready = False  # a session socket is open (and not being replaced)
        self.session_ready = False  # the first session answered (session.created or .updated): the agent is on
        self.ready_timeout_ms = ready_timeout_s * 1000.0  # from the stream's start; 0: no deadline
        self.stream_started_at: float | None = None
        self.ended = False
        self.max_reconnects = max_reconnects  # upstream sessions lost and replaced before giving up; 0: none
        self.retry_backoff_s = retry_backoff_s
        self.session_max_ms = session_max_s * 1000.0  # renew the session between turns after this; 0: never
        self.stall_timeout_s = stall_timeout_s
        self.session_opened_at: float | None = None
        self._recycle_due = False
        self._carrier_watch = StallWatch(stall_timeout_s * 1000.0)
        self._upstream_watch = StallWatch(stall_timeout_s * 1000.0)

    # --- the session opens ---------------------------------------------------------------------

    def upstream_opened(self, now: float, *, configured: bool = False, age_ms: float = 0.0) -> tuple[Action, ...]:
        """The Realtime socket is open: configure it (unless it is `configured` already: a warm session its
        webhook configured), greet, and flush the audio that waited. A warm session opened `age_ms` ago: its
        renewal before the duration cap counts from then."""
        self.upstream_ready = True
        self._quiet_since = now
        self.session_opened_at = now - age_ms
        # Audio dropped from the pre-connect buffer never reaches this session's input timeline.
        self._input_base_ms = self._inbound_ms - self._buffered_ms
        actions: list[Action] = [] if configured else [ConfigureSession()]  # configured: at a signed webhook
        actions.extend(self._opening_words(now))  # the greeting (AnsweringKeeping: held while the answer is unknown)
        actions.extend(self._flush_buffered())
        actions.extend(self._after_tools(now))  # keys pressed before the session opened
        return tuple(actions)

    def upstream_reopened(self, now: float, *, age_ms: float = 0.0) -> tuple[Action, ...]:
        """A replacement session is open (`age_ms` old when warm): configure it, restore the conversation,
        flush the waiting audio."""
        self.upstream_ready = True
        self._quiet_since = now
        self.session_opened_at = now - age_ms
        self._input_base_ms = self._inbound_ms - self._buffered_ms  # the new session's input starts here
        return (ConfigureSession(), RestoreConversation(self.conversation.replay()), *self._opening_words(now),
                *self._flush_buffered(), *self._after_tools(now))  # a tool that finished meanwhile: answer it

    def session_answered(self, now: float) -> None:
        """The first session said it exists (session.created / session.updated): the agent is on the line."""
        if not self.session_ready:
            self.session_ready = True
            if self.stream_started_at is not None:
                self.stats.upstream_ready_ms = now - self.stream_started_at

    # --- the session ends ----------------------------------------------------------------------

    def upstream_failed(self, detail: str, now: float) -> tuple[Action, ...]:
        """No session could be opened (or the upstream side broke): the caller gets the fallback."""
        self.upstream_ready = False
        if self.ended:
            return NOTHING
        self.ended = True
        return (Hangup("upstream_error", detail, fallback=True),)

    def upstream_closed(self, code: int | None, reason: str, now: float) -> tuple[Action, ...]:
        detail = f"code {code}, {reason}" if reason else f"code {code}"
        if self.max_reconnects and not self.ended:
            return self.upstream_lost("closed", f"upstream closed the session ({detail})", now)
        return self.upstream_failed(f"upstream closed the session ({detail})", now)

    def upstream_lost(self, reason: str, detail: str, now: float) -> tuple[Action, ...]:
        """The session is gone: stop what the caller hears of it, then ask for a new one (the first at once,
        then with exponential backoff), or hang up with the fallback once `max_reconnects` are spent.
        Caller audio waits in the pre-connect buffer meanwhile."""
        if self.ended:
            return NOTHING
        if self.stats.reconnects >= self.max_reconnects:
            return self.upstream_failed(f"{detail}; gave up after {self.stats.reconnects} reconnects", now)
        self.stats.reconnects += 1
        n = self.stats.reconnects
        delay = 0.0 if n == 1 else self.retry_backoff_s * 2 ** (n - 2)
        actions = self._leave_session(now)
        actions.append(Note("upstream_lost", "warning", {"reason": reason, "detail": detail, "reconnect": n}))
        actions.append(Reconnect(reason, detail, delay))
        return tuple(actions)

    # --- renewing it between turns -------------------------------------------------------------

    def between_turns(self, now: float) -> bool:
        """A quiet moment: no response active or due, nothing playing, the caller not speaking."""
        if (not self.upstream_ready or self.ended or self.active_response_id is not None or self._caller_speaking
                or self.tools_busy):
            return False
        if self._turn_ended_at is not None and now - self._turn_ended_at < RESPONSE_GRACE_MS:
            return False
        return not self.playback.is_playing(now)

    def recycle(self, now: float) -> tuple[Action, ...]:
        """Renew the session before its duration cap, only between turns; the conversation is carried over."""
        if not self.between_turns(now):
            return NOTHING
        self.stats.recycles += 1
        self._recycle_due = False
        self._leave_session(now)
        return (Note("session_recycle", fields={"turns": len(self.conversation)}),
                Reconnect("recycle", "session renewed before its duration cap"))

    # --- housekeeping --------------------------------------------------------------------------

    def tick(self, now: float, *, carrier_backed_up: bool, upstream_backed_up: bool) -> tuple[Action, ...]:
        """The periodic look at both sockets and the session's age. `*_backed_up`: that socket's send
        buffer holds more than a little (its peer is not keeping up)."""
        if self.ended:
            return NOTHING
        started = self.stream_started_at
        if (not self.session_ready and self.ready_timeout_ms and started is not None
                and now - started >= self.ready_timeout_ms):
            self.stats.upstream_not_ready = True
            seconds = self.ready_timeout_ms / 1000.0
            return (Note("upstream_not_ready", "error", {"timeout_s": seconds}),
                    *self.upstream_failed(f"upstream not ready within {seconds:g} s", now))
        stalled = self._carrier_watch.update(carrier_backed_up, now)
        if stalled is not None:
            self.ended = True
            return (Note("carrier_send_stalled", "warning", {"seconds": round(stalled / 1000.0, 1)}),
                    Abort(CARRIER),
                    Hangup("carrier_error", f"carrier stopped reading (send stalled for {stalled / 1000.0:.0f} s)"))
        if not self.upstream_ready:  # no session, or one being replaced
            self._upstream_watch.reset()
            self._recycle_due = False
            return NOTHING
        stalled = self._upstream_watch.update(upstream_backed_up, now)
        if stalled is not None:
            self._upstream_watch.reset()
            detail = f"upstream stopped reading (send stalled for {stalled / 1000.0:.0f} s)"
            return (*self.upstream_lost("stalled", detail, now), Abort(UPSTREAM))
        opened = self.session_opened_at
        self._recycle_due = bool(self.session_max_ms) and opened is not None and now - opened >= self.session_max_ms
        if self._recycle_due:
            return self.recycle(now)  # only at a quiet moment between turns
        return NOTHING

    def tick_interval_s(self, now: float | None = None) -> float:
        """When to tick next: often while a renewal waits for a quiet moment, at the ready deadline while
        the first session is not ready, else about once a second."""
        interval = RECYCLE_POLL_S if self._recycle_due else min(1.0, self.stall_timeout_s / 2)
        started = self.stream_started_at
        if not self.session_ready and self.ready_timeout_ms and started is not None and now is not None:
            remaining = (started + self.ready_timeout_ms - now) / 1000.0
            interval = min(interval, max(0.01, remaining))
        return interval

    def _leave_session(self, now: float) -> list[Action]:
        """Forget the session's live state: its playback (cleared at the carrier), response and turn."""
        actions: list[Action] = []
        if self.playback.is_playing(now):
            actions.append(ClearPlayback())
        for item in self.playback.heard(now):
            if item.heard_ms < item.sent_ms:
                self.conversation.cut(item.item_id, item.heard_ms, item.sent_ms)
        self.playback.clear(now)
        self._drop_active_response()
        self.upstream_ready = False
        self._forget_turn()
        self._tools_session_left()
        return actions

    def _flush_buffered(self) -> list[Action]:
        actions: list[Action] = [AppendAudio(p) for p in self._buffered]
        self._buffered.clear()
        self._buffered_ms = 0.0
        return actions

    def _forget_turn(self) -> None:
        self._caller_speaking = False
        self._turn_ended_at = None
        self._awaiting_first_audio = False
        self._first_mark = None

    def _drop_active_response(self) -> None:
        if self.active_response_id is not None:
            self._dropped_responses.append(self.active_response_id)
            self.active_response_id = None
