"""Silence on the line: a part of `Call` (its base class), as `ToolKeeping` is.

`reprompt_s` (IDLE_REPROMPT_S): the caller has been silent this long since the agent's last answer finished
playing (the playback tracker says when: the echo of the mark after its last chunk, or the clock estimate
for a carrier without marks; not when the audio was sent) → the model is asked to check in, once per
silence (`RequestResponse` with the re-prompt instructions, added to the agent's own). `hangup_s`
(IDLE_HANGUP_S): silent this long → the model is asked for a short goodbye, and the call ends as end_call
ends it, once the goodbye has been heard, `goodbye_max_wait_s` at most (`ToolKeeping`'s departure; outcome
idle). Silence is counted from the later of the caller's last sign of life (speech started or stopped, a
key, the session opening) and the end of the agent's last answer; anything going on suspends the count: the
caller speaking or keying in an entry, a response going or asked for, audio playing, a tool running or its
output waiting, a departure, no session, an outbound call's answer not known yet (`AnsweringKeeping`). The
check-in suspends it too without starting it again: after it has played the caller has
`hangup_s - reprompt_s` of silence left to answer it. The caller speaking or pressing a key during the idle
goodbye calls the hang-up off.

GA `server_vad` has `idle_timeout_ms` (the server sends `input_audio_buffer.timeout_triggered` and answers
by itself). The gateway does not use it, in any session: its timer starts at `response.done` plus the
audio's length, which on a phone bridge is the server's guess (the answer is generated faster than it
plays, the carrier buffers, a barge-in cuts it), while the tracker knows when the caller heard the end;
its response cannot carry the configured instructions; and beta and `semantic_vad` sessions have no such
timer, so one clock in the core keeps every session alike and testable on a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.core.events import Action, Note, RequestResponse
from gateway.core.lifecycle import RESPONSE_GRACE_MS
from gateway.core.tools import Departure

if TYPE_CHECKING:
    from gateway.core.playback import PlaybackTracker
    from gateway.core.stats import CallStats

DEFAULT_REPROMPT = "The caller has been silent for a while. Briefly check whether they are still there."
DEFAULT_GOODBYE = ("The caller has been silent for a long time. Say a short, friendly goodbye and nothing else: "
                   "the call ends after it.")
IDLE_POLL_S = 0.25  # while audio plays: the longest tick
REPROMPT, GOODBYE = "idle_reprompt", "idle_goodbye"  # the responses' purpose


@dataclass(frozen=True, slots=True)
class IdlePolicy:
    """What a silent line gets (0: off)."""

    reprompt_s: float = 0.0
    hangup_s: float = 0.0
    reprompt_instructions: str = DEFAULT_REPROMPT
    goodbye_instructions: str = DEFAULT_GOODBYE
    goodbye_max_wait_s: float = 10.0

    @property
    def enabled(self) -> bool:
        return bool(self.reprompt_s or self.hangup_s)


class IdleKeeping:
    # what the Call provides
    playback: PlaybackTracker
    stats: CallStats
    upstream_ready: bool
    ended: bool
    active_response_id: str | None
    departure: Departure | None
    tools_busy: bool
    _caller_speaking: bool
    _turn_ended_at: float | None
    _awaiting_response: bool
    _awaiting_since: float
    _keys: list[str]
    _quiet_since: float | None  # set when a session opens (SessionKeeping)
    answer_pending: bool  # who answered is not known yet (AnsweringKeeping)

    def _init_idle(self, policy: IdlePolicy) -> None:
        self.idle = policy
        self._quiet_since = None  # the caller's last sign of life (None: no session yet)
        self._answered_at = 0.0  # the agent's last response ended
        self._checked_in = False  # the check-in of this silence was asked for
        self._checked_in_at = 0.0  # when
        self._silent_before_ms = 0.0  # the silence counted until then

    # --- hooks the Call's handlers call ------------------------------------------------------------

    def _idle_caller(self, now: float) -> list[Action]:
        """The caller spoke or pressed a key: the silence is over (and an idle goodbye called off)."""
        self._quiet_since = now
        self._checked_in = False
        d = self.departure
        if d is not None and d.kind == "idle" and not d.going:
            self.departure = None
            return [Note("idle_hangup_cancelled", fields={"note": "the caller is back"})]
        return []

    def _idle_answered(self, now: float) -> None:
        self._answered_at = now

    # --- the clock ---------------------------------------------------------------------------------

    def _idle_busy(self, now: float) -> bool:
        """Something is going on: no silence is counted."""
        return (self.ended or not self.upstream_ready or self.answer_pending or self._caller_speaking
                or self.active_response_id is not None
                or (self._awaiting_response and now - self._awaiting_since < RESPONSE_GRACE_MS)
                or self.tools_busy or bool(self._keys)
                or (self._turn_ended_at is not None and now - self._turn_ended_at < RESPONSE_GRACE_MS)
                or self.playback.is_playing(now))

    def silent_since(self, now: float) -> float | None:
        """When the current silence began; None while something is going on (or nothing is counted)."""
        if self._quiet_since is None or self._idle_busy(now):
            return None
        end = max(self._quiet_since, self._answered_at, self.playback.ended_at)
        if self._checked_in:  # the check-in's time is not silence, but the silence before it still counts
            return max(end, self._checked_in_at) - self._silent_before_ms
        return end

    def _idle_step(self, now: float) -> list[Action]:
        p = self.idle
        if not p.enabled:
            return []
        since = self.silent_since(now)
        if since is None:
            return []
        silent = now - since
        fields = {"silent_s": round(silent / 1000.0, 1)}
        if p.hangup_s and silent >= p.hangup_s * 1000.0:
            reason = f"the caller was silent for {p.hangup_s:g} s"
            self.departure = Departure("idle", now, now + p.goodbye_max_wait_s * 1000.0, reason=reason)
            self._awaiting_response, self._awaiting_since = True, now
            return [Note("idle_goodbye", fields=fields), RequestResponse(p.goodbye_instructions, GOODBYE)]
        if p.reprompt_s and not self._checked_in and silent >= p.reprompt_s * 1000.0:
            self._checked_in, self._checked_in_at, self._silent_before_ms = True, now, silent
            self.stats.idle_reprompts += 1
            self._awaiting_response, self._awaiting_since = True, now
            return [Note("idle_reprompt", fields=fields), RequestResponse(p.reprompt_instructions, REPROMPT)]
        return []

    def idle_tick_s(self, now: float) -> float | None:
        """When the next silence deadline falls (None: none is counting, or it waits for something else)."""
        p = self.idle
        if not p.enabled or self.ended or self.departure is not None:
            return None
        since = self.silent_since(now)
        if since is None:
            if self.playback.is_playing(now):  # the end of the answer starts the count: look again soon
                return max(0.05, min(IDLE_POLL_S, self.playback.remaining_ms(now) / 1000.0))
            return None
        wait_s = p.reprompt_s if p.reprompt_s and not self._checked_in else p.hangup_s
        if not wait_s:
            return None
        return max(0.01, (since + wait_s * 1000.0 - now) / 1000.0)
