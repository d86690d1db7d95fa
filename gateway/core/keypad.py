"""Keypad input (DTMF) as the model hears it: a part of `Call` (its base class), as `ToolKeeping` is.

A carrier's face decodes a key press into `Dtmf`; the tools file's `dtmf:` section (`Keypad`) says what it
becomes. Mode off: the key is counted and logged, nothing more. Mode digit: each key becomes a short user
message of text (`SendUserText`, worded by the template). Mode collect: keys are gathered until the
terminator key (not included), a pause between keys (`pause_s`, on the call's clock: `tick` flushes it) or
`max_digits`, and the whole entry becomes one message. After a message the model is asked to answer
(`RequestResponse`), unless a response is going: the message and the request then wait for it, as a tool's
output does (`ToolKeeping`'s held actions). With turn detection off, `commit_key` ends the caller's turn
(`CommitInput`, then a response); keys collected so far go first.

A collection marked sensitive (card numbers, PINs) is never logged or put in the call summary in full, only
masked (one `*` per key) with its count, and the exact keys (also spaced out: "1 2 3 4", "1-2-3-4") are
masked in the transcripts and tool arguments the gateway logs, since the model may read them back. The
model gets the keys; the `ConversationLog` keeps the message, so a replacement session hears it too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.core.events import Action, CommitInput, Note, SendUserText

if TYPE_CHECKING:
    from gateway.core.conversation import ConversationLog
    from gateway.core.stats import CallStats

KEYS = "0123456789*#ABCD"
OFF, DIGIT, COLLECT = "off", "digit", "collect"
MODES = (OFF, DIGIT, COLLECT)
PLACEHOLDER = "{digits}"
DIGIT_TEMPLATE = "The caller pressed {digits} on the keypad."
COLLECT_TEMPLATE = "The caller entered {digits} on the keypad."
MAX_DIGITS = 64
SECRETS_KEPT = 16  # sensitive entries of one call masked in its logged transcripts (the newest)


@dataclass(frozen=True, slots=True)
class Keypad:
    """What key presses become (the tools file's `dtmf:` section; off without one)."""

    mode: str = OFF
    template: str | None = None  # with {digits}; None: the mode's default
    terminator: str | None = "#"  # collect: ends the entry (not part of it)
    pause_s: float = 3.0  # collect: a pause this long between keys ends the entry
    max_digits: int = 32  # collect: an entry this long ends
    commit_key: str | None = None  # turn detection off: this key ends the caller's turn
    sensitive: bool = False  # entries kept out of logs and the call summary

    def words(self, digits: str) -> str:
        template = self.template or (COLLECT_TEMPLATE if self.mode == COLLECT else DIGIT_TEMPLATE)
        return template.replace(PLACEHOLDER, digits)


def mask(digits: str) -> str:
    return "*" * len(digits)


def _spaced(digits: str) -> re.Pattern[str]:
    """The keys, also written apart ("1 2 3 4", "1-2-3-4", "1, 2, 3, 4"), not inside a longer number."""
    return re.compile(r"(?<![0-9])" + r"[\s,.-]*".join(map(re.escape, digits)) + r"(?![0-9])")


class KeypadKeeping:
    # what the Call provides
    stats: CallStats
    conversation: ConversationLog
    upstream_ready: bool
    session_opened_at: float | None
    ended: bool
    _held: list[Action]
    _response_due: bool
    _speech_stopped_at: float | None
    _turn_ended_at: float | None
    _awaiting_first_audio: bool
    _first_mark: tuple[str, float] | None
    _after_tools: Callable[[float], list[Action]]
    _idle_caller: Callable[[float], list[Action]]
    input_held: bool  # AnsweringKeeping

    def _init_keypad(self, keypad: Keypad, commit_turns: bool) -> None:
        self.keypad = keypad
        self.commit_turns = commit_turns and keypad.commit_key is not None  # turn detection is off
        self._keys: list[str] = []  # collect: the entry so far
        self._key_at = 0.0  # when its last key came
        self._entries = 0
        self._secrets: list[tuple[str, re.Pattern[str]]] = []

    # --- the carrier side ------------------------------------------------------------------------

    def carrier_dtmf(self, digit: str, now: float) -> tuple[Action, ...]:
        """A key press (a face may hand over several keys in one string: each is a press)."""
        if self.input_held:  # who answered is not known yet, or a machine did (AnsweringKeeping)
            return (Note("dtmf_ignored", fields={"reason": "answer not known yet or a machine", "keys": len(digit)}),)
        actions = self._idle_caller(now)
        for key in digit:
            if key not in KEYS:
                actions.append(Note("dtmf_ignored", "warning", {"reason": "not a keypad key"}))
                continue
            self.stats.dtmf += 1
            actions.extend(self._key(key, now))
        return tuple(actions)

    def _key(self, key: str, now: float) -> list[Action]:
        k = self.keypad
        note = Note("dtmf", fields={"masked": True} if k.sensitive else {"digit": key})
        if self.commit_turns and key == k.commit_key:  # the caller's audio, then their keys, then an answer
            return [note, *self._flush(), *self._commit(now), *self._after_tools(now)]
        if k.mode == DIGIT:
            return [note, *self._entry(key), *self._after_tools(now)]
        if k.mode != COLLECT:
            return [note]
        if key == k.terminator:
            return [note, *self._flush(), *self._after_tools(now)]
        self._keys.append(key)
        self._key_at = now
        if len(self._keys) >= k.max_digits:
            return [note, *self._flush(), *self._after_tools(now)]
        return [note]

    # --- entries and turns -------------------------------------------------------------------------

    def _flush(self) -> list[Action]:
        if not self._keys:
            return []
        digits = "".join(self._keys)
        self._keys.clear()
        return self._entry(digits)

    def _entry(self, digits: str) -> list[Action]:
        """One entry to the model: a user message, held with a response due; the caller's `_after_tools` sends
        them (now, or once the current response is done)."""
        k = self.keypad
        text = k.words(digits)
        self._entries += 1
        shown = mask(digits) if k.sensitive else digits
        if k.sensitive:
            self._secrets.append((digits, _spaced(digits)))
            del self._secrets[:-SECRETS_KEPT]
        self.stats.keypad.append({"digits": shown, "count": len(digits), "sensitive": k.sensitive})
        self.conversation.user_text(f"keypad:{self._entries}", text)
        self._response_due = True
        if self.upstream_ready or self.session_opened_at is None:  # the first session gets it when it opens;
            self._held.append(SendUserText(text))  # a replacement one with the replayed conversation
        return [Note("keypad_input", fields={"digits": shown, "count": len(digits), "mode": k.mode})]

    def _commit(self, now: float) -> list[Action]:
        """Turn detection is off and the caller pressed the commit key: their turn ends now."""
        if not self.upstream_ready:
            return [Note("turn_not_committed", "warning", {"reason": "no session (reconnecting)"})]
        self._speech_stopped_at = self._turn_ended_at = now
        self._awaiting_first_audio = True
        self._first_mark = None
        self.stats.turns += 1
        self._response_due = True
        return [Note("turn_committed", fields={"key": self.keypad.commit_key}), CommitInput()]

    # --- the clock ---------------------------------------------------------------------------------

    def _keypad_due(self, now: float) -> list[Action]:
        """Collect mode: the pause after the last key has passed: the entry is complete."""
        if self._keys and not self.ended and now - self._key_at >= self.keypad.pause_s * 1000.0:
            return [*self._flush(), *self._after_tools(now)]
        return []

    def keypad_tick_s(self, now: float) -> float | None:
        """While keys are being collected: when the pause will have passed (None: nothing waits)."""
        if not self._keys:
            return None
        return max(0.01, (self._key_at + self.keypad.pause_s * 1000.0 - now) / 1000.0)

    # --- what the logs may show ------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """`text` with this call's sensitive entries masked (as typed, or spaced out)."""
        for digits, spaced in self._secrets:
            text = spaced.sub(mask(digits), text)
        return text
