"""The conversation so far, as text: what a new upstream session needs to carry on after a reconnect.

A Realtime session keeps the conversation server-side; when the session is lost (or renewed before its
duration cap) the new one starts empty. The log is fed by the `Call` from events it already handles:
the caller's turns (their item ids, then their transcripts when input transcription is on; keypad input as
the text message it was sent as), the assistant's answers (transcript deltas, then the final transcript)
and how much of each cut-off answer the caller heard; and the function calls the model made with their
outputs (replayed as `function_call` and `function_call_output` items, so a tool that ran, or is still
running, across a reconnect stays part of the conversation). Turns are kept in the order they first
appeared; the log is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_TURNS = 200  # the newest turns kept
MAX_REPLAY_CHARS = 24_000  # the newest turns whose text fits are replayed
CUT_MARK = "…"


FUNCTION_CALL = "function_call"
FUNCTION_OUTPUT = "function_call_output"


@dataclass(slots=True)
class Turn:
    role: str  # "user" | "assistant" | FUNCTION_CALL (text: the arguments) | FUNCTION_OUTPUT (text: the output)
    item_id: str
    text: str = ""
    final: bool = False  # the final transcript arrived
    parts: list[str] = field(default_factory=list)  # transcript deltas until then
    heard: float | None = None  # fraction of an answer's audio the caller heard, when it was cut short
    call_id: str = ""
    name: str = ""


def heard_prefix(text: str, fraction: float) -> str:
    """The part of `text` the caller heard, estimated from the share of its audio that played."""
    if fraction >= 1.0:
        return text
    n = round(len(text) * max(0.0, fraction))
    if n <= 0:
        return ""
    if n < len(text) and not text[n].isspace():  # do not end inside a word
        n = text.rfind(" ", 0, n)
        if n <= 0:
            return ""
    return text[:n].rstrip(" ,.;:-") + CUT_MARK


class ConversationLog:
    def __init__(self) -> None:
        self._turns: dict[str, Turn] = {}  # by item id, in order of first appearance

    def __len__(self) -> int:
        return len(self._turns)

    def _turn(self, role: str, item_id: object) -> Turn | None:
        if not isinstance(item_id, str) or not item_id:
            return None
        turn = self._turns.get(item_id)
        if turn is None:
            turn = self._turns[item_id] = Turn(role, item_id)
            if len(self._turns) > MAX_TURNS:
                del self._turns[next(iter(self._turns))]
        return turn

    def user_turn(self, item_id: object) -> None:
        """The caller started speaking: their item will hold this turn (server VAD names it up front)."""
        self._turn("user", item_id)

    def assistant_turn(self, item_id: object) -> None:
        self._turn("assistant", item_id)

    def assistant_delta(self, item_id: object, delta: object) -> None:
        turn = self._turn("assistant", item_id)
        if turn is not None and not turn.final and isinstance(delta, str):
            turn.parts.append(delta)

    def transcript(self, role: str, item_id: object, text: str) -> None:
        turn = self._turn(role, item_id)
        if turn is not None:
            turn.text, turn.final = text, True
            turn.parts.clear()

    def user_text(self, key: str, text: str) -> None:
        """A user message of text the gateway added (keypad input): replayed like a caller's turn."""
        turn = self._turn("user", key)
        if turn is not None:
            turn.text, turn.final = text, True

    def function_call(self, item_id: str | None, call_id: str, name: str, arguments: str) -> None:
        turn = self._turn(FUNCTION_CALL, item_id or f"call:{call_id}")
        if turn is not None:
            turn.call_id, turn.name, turn.text, turn.final = call_id, name, arguments, True

    def function_output(self, call_id: str, output: str) -> None:
        turn = self._turn(FUNCTION_OUTPUT, f"output:{call_id}")
        if turn is not None:
            turn.call_id, turn.text, turn.final = call_id, output, True

    def cut(self, item_id: str, heard_ms: float, sent_ms: float) -> None:
        """The caller heard only `heard_ms` of the `sent_ms` of this answer's audio."""
        turn = self._turns.get(item_id)
        if turn is not None and sent_ms > 0:
            fraction = min(1.0, heard_ms / sent_ms)
            turn.heard = fraction if turn.heard is None else min(turn.heard, fraction)

    def replay(self) -> tuple[tuple[str, ...], ...]:
        """Every turn with text, oldest first, cut answers as heard; bounded in size. Messages are
        (role, text); function calls (FUNCTION_CALL, call_id, name, arguments) and their outputs
        (FUNCTION_OUTPUT, call_id, output); an output whose call is not replayed is left out."""
        out: list[tuple[str, ...]] = []
        for turn in self._turns.values():
            if turn.role == FUNCTION_CALL:
                out.append((FUNCTION_CALL, turn.call_id, turn.name, turn.text))
                continue
            if turn.role == FUNCTION_OUTPUT:
                out.append((FUNCTION_OUTPUT, turn.call_id, turn.text))
                continue
            text = (turn.text if turn.final else "".join(turn.parts)).strip()
            if turn.role == "assistant":
                if turn.heard is not None:
                    text = heard_prefix(text, turn.heard)
                elif not turn.final and text:
                    text += CUT_MARK  # the session was lost while this answer was being generated
            if text:
                out.append((turn.role, text))
        size, keep = 0, len(out)
        while keep > 0 and size + len(out[keep - 1][-1]) <= MAX_REPLAY_CHARS:
            keep -= 1
            size += len(out[keep][-1])
        calls: set[str] = set()
        kept = []
        for entry in out[keep:]:
            if entry[0] == FUNCTION_CALL:
                calls.add(entry[1])
            elif entry[0] == FUNCTION_OUTPUT and entry[1] not in calls:
                continue  # its call was dropped (bounded log or replay): the server would refuse it
            kept.append(entry)
        return tuple(kept)
