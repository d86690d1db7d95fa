"""The built-in tools: end_call and transfer_call. Each checks its arguments and answers at once; what
follows (the hang-up once the goodbye has been heard, the hand-off line and the transfer) is the
call's decision (`core.tools`), carried in the result's `then`."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.events import EndCall, ToolResult, TransferTo
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
