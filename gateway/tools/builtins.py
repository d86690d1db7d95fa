"""The built-in tools: end_call, transfer_call and send_dtmf. end_call and transfer_call check their
arguments and answer at once; what follows (the hang-up once the goodbye has been heard, the hand-off line
and the transfer) is the call's decision (`core.tools`), carried in the result's `then`. send_dtmf is run
by the call's tools (`runner.CallTools`) through the sender its media session gives it; its results are
built here: the output never repeats the keys (they may be sensitive), and asks for no response
(`Listen`: the phone menu at the far end answers)."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.events import EndCall, Listen, ToolResult, TransferTo
from gateway.tools.spec import EndCallTool, TransferTool


def _error(message: str) -> str:
    return orjson.dumps({"error": message}).decode()


def end_call(tool: EndCallTool, call_id: str, arguments: dict[str, Any]) -> ToolResult:
    reason = arguments.get("reason")
    return ToolResult(call_id, "ok", "ok", EndCall(reason if isinstance(reason, str) else "", tool.max_wait_s))


def transfer_call(tool: TransferTool, call_id: str, arguments: dict[str, Any]) -> ToolResult:
    """Only a destination of the allow-list, by name: anything else (a number, a URI, an unknown name) is
    refused, and the model is told which names it may use."""
    wanted = arguments.get("destination")
    destination = tool.destination(wanted) if isinstance(wanted, str) else None
    if destination is None:
        names = ", ".join(d.name for d in tool.destinations)
        return ToolResult(call_id, _error(f"That destination is not allowed. Transfer only to one of: {names}."),
                          "refused")
    output = orjson.dumps({"ok": True, "transferring_to": destination.name}).decode()
    return ToolResult(call_id, output, "ok", TransferTo(destination.name, destination.handoff, tool.max_wait_s))


DTMF_UNAVAILABLE = ("Keys cannot be sent on this call: its carrier cannot send them without ending the call. "
                    "Tell the caller, or go on without them.")


class DigitsNotSent(Exception):
    """The carrier did not take the keys. The message says why, for the model and the log: never the keys."""


def dtmf_sent(call_id: str, digits: str) -> ToolResult:
    output = orjson.dumps({"ok": True, "keys_sent": len(digits),
                           "note": "Stay silent and listen: the other side answers the keys."}).decode()
    return ToolResult(call_id, output, "ok", Listen())


def dtmf_failed(call_id: str, reason: str) -> ToolResult:
    return ToolResult(call_id, _error(f"The keys were not sent ({reason[:200]})."), "failed")
