"""What the I/O layer reports back about a tool it ran (`Call.tool_result`): its result, and for an accepted
built-in what it asks of the call. Re-exported by `core.events`, the vocabulary's one import."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EndCall:
    """An accepted end_call: hang up once what the agent is saying has been heard, `max_wait_s` at most."""

    reason: str = ""
    max_wait_s: float = 10.0


@dataclass(frozen=True, slots=True)
class TransferTo:
    """An accepted transfer_call to an allow-listed destination (by name), after its hand-off line."""

    destination: str
    handoff: str | None = None
    max_wait_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Listen:
    """An accepted send_dtmf: the output is added, and no response is asked for. The far end (a phone menu)
    answers the keys, and what it says is the next turn."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool finished, or was refused before it ran. `output` goes to the model as the function's output;
    `outcome` is a bounded label (ok, bad_arguments, unknown_tool, http_error, timeout, too_large, failed,
    refused); `then` is what an accepted built-in asks of the call."""

    call_id: str
    output: str
    outcome: str = "ok"
    then: EndCall | TransferTo | Listen | None = None
