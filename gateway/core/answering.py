"""Who answered an outbound call (answering-machine detection): a part of `Call` (its base class), as
`IdleKeeping` is.

A carrier with asynchronous detection streams the call's audio as soon as the callee picks up and says
later, apart from the stream, whether a person or a machine answered (for a machine, once its greeting's
beep has sounded). The I/O layer calls `expect_answer` at the stream's start for such a call, and
`answered_by` when the result comes. Until then the agent keeps quiet: its greeting is held, and the
callee's audio and keys are not passed upstream (held back and counted, `frames_amd_held`), so the model
never answers a voicemail greeting; the silence timers do not run. Held audio is dropped, not buffered: a
person's "Hello?" said seconds before the result would reach the model late, after or over its greeting.

- "human" or "unknown" (or no result within `timeout_s`: counted as "timeout"): the conversation starts:
  the greeting goes (once the session is open; an agent without one is asked to open the call, since what
  the person said meanwhile was held back), audio flows upstream, the silence is counted from now.
- "machine", as the agent's `Voicemail` says: "hangup": hang up at once; "speak": the model is asked to
  leave the message (a response with instructions built from it, added to the agent's own), and the call
  ends as end_call ends it, once that response is done and the playback tracker says it was heard, within
  `message_max_wait_s` (`ToolKeeping`'s departure, kind "voicemail"); "say": the carrier says the message
  itself and hangs up (`LeaveMessage`). The callee's audio stays held: the machine is only recording.

Every machine answer ends with outcome "voicemail". A result when none is awaited (a second one, one after
the timeout, after the call ended, or on a call that was not detecting) is ignored and logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from gateway.core.events import Action, Greet, Hangup, LeaveMessage, Note, RequestResponse
from gateway.core.tools import Departure

if TYPE_CHECKING:
    from gateway.core.stats import CallStats

HUMAN, MACHINE, UNKNOWN, TIMEOUT = "human", "machine", "unknown", "timeout"  # CallStats.answered_by
VOICEMAIL = "voicemail"  # the outcome of a machine answer, and the purpose of the message's response
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MESSAGE_MAX_WAIT_S = 30.0
SPEAK_MESSAGE = ("An answering machine took the call and its beep has sounded: you are being recorded. Leave a "
                 "voicemail now, as this asks, and say nothing else (the call ends after it): {message}")
DEFAULT_MESSAGE = "briefly say who you are and why you called."
CALLEE_ANSWERED = ("The person you called has just answered the phone. Greet them, say who you are and why you "
                   "are calling, in one or two short sentences.")


class VoicemailLike(Protocol):
    """What a machine answer gets (an agent profile's `Voicemail`)."""

    @property
    def mode(self) -> str: ...  # hangup, speak, say

    @property
    def message(self) -> str | None: ...


class AnsweringKeeping:
    # what the Call provides
    stats: CallStats
    greeting: str | None
    upstream_ready: bool
    ended: bool
    departure: Departure | None
    _awaiting_response: bool
    _awaiting_since: float
    _quiet_since: float | None

    def _init_answering(self) -> None:
        self.answer_pending = False  # the answer is being detected: the agent keeps quiet
        self.input_held = False  # the callee's audio and keys are not passed upstream (pending, or a machine)
        self._answer_since = 0.0
        self._answer_deadline = 0.0
        self._message_max_wait_ms = DEFAULT_MESSAGE_MAX_WAIT_S * 1000.0
        self._greeted = False
        self._message_due: RequestResponse | None = None  # the voicemail message waits for a session

    def expect_answer(self, now: float, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                      message_max_wait_s: float = DEFAULT_MESSAGE_MAX_WAIT_S) -> None:
        """This outbound call's answer is being detected (call it at the stream's start, before the session
        opens): the agent keeps quiet until `answered_by`, or `timeout_s` from now (then: a person)."""
        if self.ended or self.stats.answered_by is not None:
            return
        self.answer_pending = self.input_held = True
        self._answer_since = now
        self._answer_deadline = now + timeout_s * 1000.0
        self._message_max_wait_ms = message_max_wait_s * 1000.0

    def answered_by(self, kind: str, voicemail: VoicemailLike | None, now: float) -> tuple[Action, ...]:
        """The detection's result: "human", "machine" or "unknown" (anything else counts as unknown)."""
        if not self.answer_pending or self.ended:
            reason = ("the call has ended" if self.ended else "already answered" if self.stats.answered_by
                      else "the answer was not being detected")
            return (Note("answered_by_ignored", fields={"answered_by": kind[:32], "reason": reason,
                                                        "decided": self.stats.answered_by}),)
        result = kind if kind in (HUMAN, MACHINE) else UNKNOWN
        note = self._decided(result, now, {} if kind == result else {"given": kind[:32]})
        if result != MACHINE:
            return (note, *self._conversation_starts(now))
        return (note, *self._machine(voicemail, now))

    # --- the decisions -----------------------------------------------------------------------------

    def _decided(self, result: str, now: float, fields: dict[str, str]) -> Note:
        self.answer_pending = False
        self.stats.answered_by = result
        self.stats.answer_wait_ms = waited = now - self._answer_since
        return Note("answered_by", fields={"answered_by": result, "waited_ms": round(waited),
                                           "frames_held": self.stats.frames_amd_held, **fields})

    def _conversation_starts(self, now: float) -> list[Action]:
        self.input_held = False
        if not self.upstream_ready:
            return []  # the session greets when it opens
        self._quiet_since = now  # the silence is counted from the answer, not from the session's opening
        return self._opening_words(now)

    def _machine(self, voicemail: VoicemailLike | None, now: float) -> list[Action]:
        mode = voicemail.mode if voicemail is not None else "hangup"
        message = voicemail.message if voicemail is not None else None
        if mode == "speak":
            request = RequestResponse(SPEAK_MESSAGE.format(message=message or DEFAULT_MESSAGE), VOICEMAIL)
            if not self.upstream_ready:
                self._message_due = request  # asked for once the session opens
                return []
            return self._leave_message(request, now)
        self.ended = True
        if mode == "say" and message:
            return [LeaveMessage(message, VOICEMAIL, "answered by a machine: the carrier leaves the message")]
        notes: list[Action] = []
        if mode != "hangup":
            notes.append(Note("voicemail_not_left", "warning", {"mode": mode, "reason": "no message to say"}))
        return [*notes, Hangup(VOICEMAIL, "answered by a machine", carrier_hangup=True)]

    def _leave_message(self, request: RequestResponse, now: float) -> list[Action]:
        """The model leaves the message; the departure hangs up once it has been heard (or at its bound)."""
        self.departure = Departure(VOICEMAIL, now, now + self._message_max_wait_ms,
                                   reason="answered by a machine: the agent left a message")
        self._awaiting_response, self._awaiting_since = True, now
        return [request]

    def _opening_words(self, now: float) -> list[Action]:
        """What the agent says first once a session is open: nothing while the answer is unknown; the
        voicemail message when a machine answered; else the greeting, once."""
        if self.answer_pending or self.ended:
            return []
        request = self._message_due
        if request is not None:
            self._message_due = None
            return self._leave_message(request, now)
        if self._greeted or self.input_held:
            return []
        if self.greeting:
            self._greeted = True
            self._awaiting_response, self._awaiting_since = True, now
            return [Greet(self.greeting)]
        if self.stats.answered_by in (HUMAN, UNKNOWN, TIMEOUT):
            # A detected answer and no greeting: what the person said while the answer was unknown was held
            # back, so the model is asked to open the call rather than left waiting for words it never got.
            self._greeted = True
            self._awaiting_response, self._awaiting_since = True, now
            return [RequestResponse(CALLEE_ANSWERED, "opening")]
        return []

    # --- the clock ---------------------------------------------------------------------------------

    def _answer_due(self, now: float) -> list[Action]:
        """No result within the bound: the callee is taken for a person."""
        if not self.answer_pending or self.ended or now < self._answer_deadline:
            return []
        seconds = round((self._answer_deadline - self._answer_since) / 1000.0, 1)
        note = self._decided(TIMEOUT, now, {})
        return [Note("answered_by_timeout", "warning", {"timeout_s": seconds, "note": "taken for a person"}),
                note, *self._conversation_starts(now)]

    def answer_tick_s(self, now: float) -> float | None:
        """While the answer is awaited: when its bound falls (None: nothing is awaited)."""
        if not self.answer_pending or self.ended:
            return None
        return max(0.01, (self._answer_deadline - now) / 1000.0)
