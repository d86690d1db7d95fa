"""Running what the model calls: `Toolbox` for the process (the tools file, the arguments' validators
compiled once, the one HTTP client), `CallTools` for one call (its running tools: a bounded number at a
time, never blocking the call's audio, all cancelled when the call ends).

Arguments are checked before anything runs: JSON text that parses to an object, valid against the
function's JSON Schema (the `jsonschema` library, the schema's own draft, `format` checked). A call that fails either
check, or names a function the file does not declare, is answered with an error output for the model
(outcome bad_arguments or unknown_tool); it never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import orjson
import structlog
from jsonschema.exceptions import best_match
from jsonschema.validators import validator_for

from gateway.core.events import RunTool, ToolResult
from gateway.tools import builtins
from gateway.tools.http_tool import BadArguments, CallContext, HttpToolClient, error_output
from gateway.tools.spec import END_CALL, SEND_DTMF, TRANSFER_CALL, ToolsSpec

log = structlog.get_logger("gateway.tools")

MAX_RUNNING_PER_CALL = 4  # HTTP tools of one call running at once; more wait their turn
MAX_ERROR_CHARS = 300


def _validator(schema: dict[str, Any]) -> Any:
    """The schema's own draft, with its `format`s checked too (date, email, ...)."""
    cls = validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


class Toolbox:
    """The process's tools."""

    def __init__(self, spec: ToolsSpec, http: HttpToolClient | None = None) -> None:
        self.spec = spec
        self.http = http or HttpToolClient()
        self._http_tools = {t.name: t for t in spec.http}
        self._validators = {f.name: _validator(f.parameters) for f in spec.functions()}

    async def close(self) -> None:
        await self.http.close()

    def check(self, action: RunTool) -> dict[str, Any] | ToolResult:
        """The call's arguments as an object, or the error result that answers it."""
        validator = self._validators.get(action.name)
        if validator is None:
            known = ", ".join(self._validators) or "none"
            return ToolResult(action.call_id, error_output(f"There is no function named {action.name[:64]!r}. "
                                                          f"Available: {known}."), "unknown_tool")
        text = action.arguments.strip() or "{}"
        try:
            arguments = orjson.loads(text)
        except orjson.JSONDecodeError:
            return ToolResult(action.call_id, error_output("The arguments are not valid JSON. Call the function "
                                                          "again with a JSON object."), "bad_arguments")
        if not isinstance(arguments, dict):
            return ToolResult(action.call_id, error_output("The arguments must be a JSON object."), "bad_arguments")
        if action.name == TRANSFER_CALL:
            return arguments  # an unknown destination is refused (and counted as such), not a schema error
        error = best_match(validator.iter_errors(arguments))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path)
            message = f"Invalid arguments{' at ' + where if where else ''}: {error.message}"[:MAX_ERROR_CHARS]
            return ToolResult(action.call_id, error_output(message), "bad_arguments")
        return arguments

    def answer_now(self, action: RunTool, arguments: dict[str, Any]) -> ToolResult | None:
        """The result of a built-in (they answer at once); None for a tool that must run."""
        if action.name == END_CALL and self.spec.end_call is not None:
            return builtins.end_call(self.spec.end_call, action.call_id, arguments)
        if action.name == TRANSFER_CALL and self.spec.transfer_call is not None:
            return builtins.transfer_call(self.spec.transfer_call, action.call_id, arguments)
        return None

    async def run(self, action: RunTool, arguments: dict[str, Any], context: CallContext) -> ToolResult:
        tool = self._http_tools[action.name]
        try:
            outcome = await self.http.call(tool, arguments, context)
        except BadArguments as exc:
            return ToolResult(action.call_id, error_output(f"Invalid arguments: {exc}"), "bad_arguments")
        return ToolResult(action.call_id, outcome.output, outcome.outcome)


class CallTools:
    """One call's tools: `start` answers at once (checks, built-ins) or runs the tool as a task that
    reports through `on_result`; `cancel` ends them all (the call is over). `send_digits` sends keys to the
    far end through the call's carrier (None: it cannot, and send_dtmf is refused)."""

    def __init__(self, box: Toolbox, context: CallContext,
                 on_result: Callable[[ToolResult], Awaitable[None]], limit: int = MAX_RUNNING_PER_CALL,
                 send_digits: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.box = box
        self.context = context
        self.on_result = on_result
        self.send_digits = send_digits
        self._slots = asyncio.Semaphore(limit)
        self._keys = asyncio.Lock()  # one send_dtmf at a time: the keys go out in the order asked
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, action: RunTool) -> ToolResult | None:
        """The result now, or None: a task runs the tool and hands its result to `on_result`."""
        checked = self.box.check(action)
        if isinstance(checked, ToolResult):
            return checked
        now = self.box.answer_now(action, checked)
        if now is not None:
            return now
        if action.name == SEND_DTMF:
            if self.send_digits is None:
                return ToolResult(action.call_id, error_output(builtins.DTMF_UNAVAILABLE), "refused")
            coro: Coroutine[Any, Any, None] = self._press(action.call_id, checked["digits"])
        else:
            coro = self._run(action, checked)
        task = asyncio.create_task(coro, name=f"tool-{action.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def _press(self, call_id: str, digits: str) -> None:
        send = self.send_digits
        assert send is not None
        try:
            async with self._keys:
                await send(digits)
            result = builtins.dtmf_sent(call_id, digits)
        except builtins.DigitsNotSent as exc:
            result = builtins.dtmf_failed(call_id, str(exc))
        except Exception:  # a bug, not the carrier's answer: the model still gets one
            log.exception("tool_failed", tool=SEND_DTMF)
            result = builtins.dtmf_failed(call_id, "the gateway failed")
        await self._deliver(result, SEND_DTMF)

    async def _run(self, action: RunTool, arguments: dict[str, Any]) -> None:
        try:
            async with self._slots:
                result = await self.box.run(action, arguments, self.context)
        except Exception:  # a bug, not the endpoint's fault (those are outcomes): the model still gets an answer
            log.exception("tool_failed", tool=action.name)
            result = ToolResult(action.call_id, error_output("The tool failed."), "failed")
        await self._deliver(result, action.name)

    async def _deliver(self, result: ToolResult, name: str) -> None:
        try:
            await self.on_result(result)
        except Exception:
            log.exception("tool_result_not_delivered", tool=name)

    @property
    def running(self) -> int:
        return sum(1 for task in self._tasks if not task.done())

    async def cancel(self) -> None:
        tasks = list(self._tasks)
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
