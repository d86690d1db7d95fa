"""The tools the agent may call, as the tools file (TOOLS_FILE) declares them: read and checked by
`tools.loader` at start-up, described to the model in the session (`functions`, `mcp`), run by
`tools.runner`.

    http_tools:            functions the gateway runs: an HTTP request with the arguments
    mcp_servers:           remote MCP servers the model calls itself (GA dialect only)
    end_call:              the built-in that hangs up once the goodbye has been heard
    transfer_call:         the built-in that moves the call to an allow-listed destination
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.env import Secret

END_CALL = "end_call"
TRANSFER_CALL = "transfer_call"
BUILTINS = (END_CALL, TRANSFER_CALL)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024
DEFAULT_MAX_WAIT_S = 10.0
DEFAULT_ERROR = "The {name} tool is not available right now. Tell the caller you could not look it up."
END_CALL_DESCRIPTION = ("End the phone call. Say goodbye first, in the same turn; the line is hung up once "
                        "your goodbye has been heard. Only when the caller is done or asks to hang up.")
TRANSFER_DESCRIPTION = "Transfer the caller to a person. Say briefly that you are transferring them first."

Headers = tuple[tuple[str, Secret | str], ...]


@dataclass(frozen=True)
class FunctionTool:
    """A function as the model sees it, in both dialects' session.update."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class HttpTool:
    name: str
    description: str
    parameters: dict[str, Any]
    method: str
    url: str  # ${...} resolved; {param} placeholders left for the call
    placeholders: tuple[str, ...]
    headers: Headers = ()
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    error_message: str = ""
    sensitive: bool = False  # arguments kept out of logs and the call summary


@dataclass(frozen=True)
class McpServer:
    label: str
    url: str
    headers: Headers = ()
    allowed_tools: tuple[str, ...] | None = None
    description: str | None = None


@dataclass(frozen=True)
class Destination:
    name: str
    target: str  # E.164 number or sip: URI
    handoff: str | None = None  # said (and heard) before the transfer
    description: str | None = None


@dataclass(frozen=True)
class EndCallTool:
    description: str = END_CALL_DESCRIPTION
    max_wait_s: float = DEFAULT_MAX_WAIT_S


@dataclass(frozen=True)
class TransferTool:
    destinations: tuple[Destination, ...]
    description: str = TRANSFER_DESCRIPTION
    max_wait_s: float = DEFAULT_MAX_WAIT_S

    def destination(self, name: str) -> Destination | None:
        return next((d for d in self.destinations if d.name == name), None)


@dataclass(frozen=True)
class ToolsSpec:
    http: tuple[HttpTool, ...] = ()
    mcp: tuple[McpServer, ...] = ()
    end_call: EndCallTool | None = None
    transfer_call: TransferTool | None = None
    source: str | None = None  # the file it came from

    def __bool__(self) -> bool:
        return bool(self.http or self.mcp or self.end_call or self.transfer_call)

    def functions(self) -> tuple[FunctionTool, ...]:
        """Every function the gateway runs, as the model is told about it."""
        out = [FunctionTool(t.name, t.description, t.parameters) for t in self.http]
        if self.end_call is not None:
            out.append(FunctionTool(END_CALL, self.end_call.description, END_CALL_PARAMETERS))
        if self.transfer_call is not None:
            out.append(FunctionTool(TRANSFER_CALL, transfer_description(self.transfer_call),
                                    transfer_parameters(self.transfer_call)))
        return tuple(out)

    def names(self) -> tuple[str, ...]:
        """The functions' names: the values of the `tool` metric label."""
        return tuple(f.name for f in self.functions())

    def sensitive(self) -> frozenset[str]:
        return frozenset(t.name for t in self.http if t.sensitive)

    def secrets(self) -> list[Secret]:
        return [v for t in (*self.http, *self.mcp) for _, v in t.headers if isinstance(v, Secret)]


END_CALL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"reason": {"type": "string", "description": "Why the call ends, in a few words."}},
    "additionalProperties": False,
}


def transfer_description(tool: TransferTool) -> str:
    lines = [tool.description, "Destinations:"]
    lines += [f"- {d.name}" + (f": {d.description}" if d.description else "") for d in tool.destinations]
    return "\n".join(lines)


def transfer_parameters(tool: TransferTool) -> dict[str, Any]:
    return {"type": "object", "properties": {"destination": {
        "type": "string", "enum": [d.name for d in tool.destinations], "description": "Where to transfer the caller."}},
        "required": ["destination"], "additionalProperties": False}
