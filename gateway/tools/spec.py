"""The tools the agent may call, as the tools file (TOOLS_FILE) declares them: read and checked by
`tools.loader` at start-up, described to the model in the session (`functions`, `mcp`), run by
`tools.runner`.

    http_tools:            functions the gateway runs: an HTTP request with the arguments
    mcp_servers:           remote MCP servers the model calls itself (GA dialect only)
    end_call:              the built-in that hangs up once the goodbye has been heard
    transfer_call:         the built-in that moves the call to an allow-listed destination
    send_dtmf:             the built-in that presses keys toward the far end (a phone menu), where the
                           carrier can do so without ending the stream
    dtmf:                  what the caller's key presses become (`core.keypad.Keypad`): not a tool
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.core.keypad import Keypad
from gateway.env import Secret

END_CALL = "end_call"
TRANSFER_CALL = "transfer_call"
SEND_DTMF = "send_dtmf"
BUILTINS = (END_CALL, TRANSFER_CALL, SEND_DTMF)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024
DEFAULT_MAX_WAIT_S = 10.0
DEFAULT_ERROR = "The {name} tool is not available right now. Tell the caller you could not look it up."
END_CALL_DESCRIPTION = ("End the phone call. Say goodbye first, in the same turn; the line is hung up once "
                        "your goodbye has been heard. Only when the caller is done or asks to hang up.")
TRANSFER_DESCRIPTION = "Transfer the caller to a person. Say briefly that you are transferring them first."
SEND_DTMF_DESCRIPTION = ("Press keys on the phone keypad toward the other party, to get through a phone menu "
                         "(\"press 1 for sales\"). Then stay silent and listen: the menu answers.")

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
class SendDtmfTool:
    description: str = SEND_DTMF_DESCRIPTION
    sensitive: bool = False  # the keys are kept out of logs and the call summary


@dataclass(frozen=True)
class ToolsSpec:
    http: tuple[HttpTool, ...] = ()
    mcp: tuple[McpServer, ...] = ()
    end_call: EndCallTool | None = None
    transfer_call: TransferTool | None = None
    send_dtmf: SendDtmfTool | None = None
    keypad: Keypad = field(default_factory=Keypad)  # the dtmf: section
    source: str | None = None  # the file it came from

    def __bool__(self) -> bool:
        """Any tool at all (the keypad section is not one)."""
        return bool(self.http or self.mcp or self.end_call or self.transfer_call or self.send_dtmf)

    def functions(self, *, send_dtmf: bool = True) -> tuple[FunctionTool, ...]:
        """Every function the gateway runs, as the model is told about it; send_dtmf only with `send_dtmf`
        (the call's carrier can send keys)."""
        out = [FunctionTool(t.name, t.description, t.parameters) for t in self.http]
        if self.end_call is not None:
            out.append(FunctionTool(END_CALL, self.end_call.description, END_CALL_PARAMETERS))
        if self.transfer_call is not None:
            out.append(FunctionTool(TRANSFER_CALL, transfer_description(self.transfer_call),
                                    transfer_parameters(self.transfer_call)))
        if self.send_dtmf is not None and send_dtmf:
            out.append(FunctionTool(SEND_DTMF, self.send_dtmf.description, SEND_DTMF_PARAMETERS))
        return tuple(out)

    def names(self) -> tuple[str, ...]:
        """The functions' names: the values of the `tool` metric label."""
        return tuple(f.name for f in self.functions())

    def sensitive(self) -> frozenset[str]:
        names = {t.name for t in self.http if t.sensitive}
        if self.send_dtmf is not None and self.send_dtmf.sensitive:
            names.add(SEND_DTMF)
        return frozenset(names)

    def secrets(self) -> list[Secret]:
        return [v for t in (*self.http, *self.mcp) for _, v in t.headers if isinstance(v, Secret)]


END_CALL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"reason": {"type": "string", "description": "Why the call ends, in a few words."}},
    "additionalProperties": False,
}


DTMF_KEYS_PATTERN = "^[0-9*#]{1,32}$"
SEND_DTMF_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"digits": {"type": "string", "pattern": DTMF_KEYS_PATTERN,
                              "description": "The keys to press, in order: 0-9, * and #, at most 32."}},
    "required": ["digits"],
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
