"""send_dtmf through a call's tools: the keys checked against the schema, sent through the call's sender one
call at a time, in order; the output never repeats them and asks for no response (Listen); a carrier that
cannot send keys, or one that fails, is an answer for the model, never an exception."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from gateway.core.events import Listen, RunTool, ToolResult
from gateway.tools.builtins import DTMF_UNAVAILABLE, DigitsNotSent
from gateway.tools.http_tool import CallContext
from gateway.tools.loader import parse_tools
from gateway.tools.runner import CallTools, Toolbox

CONTEXT = CallContext("CA123", "plivo", "+15005550006", "+15005550001")


def box() -> Toolbox:
    return Toolbox(parse_tools({"send_dtmf": True}, {}))


async def run(tools: CallTools, results: list[ToolResult], arguments: str, call_id: str = "call_1") -> None:
    now = tools.start(RunTool(call_id, "send_dtmf", arguments))
    assert now is None  # it runs as a task
    for _ in range(50):
        if any(r.call_id == call_id for r in results):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no result")


async def test_keys_are_sent_and_the_output_leaves_them_out():
    sent: list[str] = []
    results: list[ToolResult] = []

    async def send(digits: str) -> None:
        sent.append(digits)

    async def on_result(result: ToolResult) -> None:
        results.append(result)

    tools = CallTools(box(), CONTEXT, on_result, send_digits=send)
    await run(tools, results, '{"digits": "1234#"}')
    assert sent == ["1234#"]
    (result,) = results
    assert (result.outcome, result.then) == ("ok", Listen())
    assert orjson.loads(result.output)["keys_sent"] == 5 and "1234" not in result.output


async def test_two_calls_send_their_keys_one_after_the_other():
    order: list[str] = []
    results: list[ToolResult] = []

    async def send(digits: str) -> None:
        order.append(f"start {digits}")
        await asyncio.sleep(0.02)
        order.append(f"end {digits}")

    async def on_result(result: ToolResult) -> None:
        results.append(result)

    tools = CallTools(box(), CONTEXT, on_result, send_digits=send)
    assert tools.start(RunTool("c1", "send_dtmf", '{"digits": "1"}')) is None
    assert tools.start(RunTool("c2", "send_dtmf", '{"digits": "2"}')) is None
    for _ in range(50):
        if len(results) == 2:
            break
        await asyncio.sleep(0.01)
    assert order == ["start 1", "end 1", "start 2", "end 2"]


@pytest.mark.parametrize("arguments", ['{"digits": "12a"}', '{"digits": ""}', '{"keys": "1"}',
                                       '{"digits": "' + "1" * 33 + '"}', "not json"])
async def test_what_is_not_keys_is_answered_without_sending(arguments: str):
    sent: list[str] = []

    async def send(digits: str) -> None:
        sent.append(digits)

    async def on_result(result: ToolResult) -> None:
        raise AssertionError("answered at once")

    result = CallTools(box(), CONTEXT, on_result, send_digits=send).start(RunTool("c1", "send_dtmf", arguments))
    assert result is not None and result.outcome == "bad_arguments" and sent == []


async def test_a_carrier_without_keys_refuses_and_the_model_is_told():
    async def on_result(result: ToolResult) -> None:
        raise AssertionError("answered at once")

    result = CallTools(box(), CONTEXT, on_result).start(RunTool("c1", "send_dtmf", '{"digits": "1"}'))
    assert result is not None and result.outcome == "refused"
    assert orjson.loads(result.output)["error"] == DTMF_UNAVAILABLE


@pytest.mark.parametrize(("error", "reason"), [(DigitsNotSent("no credentials"), "no credentials"),
                                               (RuntimeError("a bug"), "the gateway failed")])
async def test_a_failed_send_is_an_answer(error: Exception, reason: str):
    results: list[ToolResult] = []

    async def send(digits: str) -> None:
        raise error

    async def on_result(result: ToolResult) -> None:
        results.append(result)

    await run(CallTools(box(), CONTEXT, on_result, send_digits=send), results, '{"digits": "9"}')
    (result,) = results
    assert result.outcome == "failed" and result.then is None
    assert orjson.loads(result.output)["error"] == f"The keys were not sent ({reason})."


async def test_send_dtmf_not_declared_is_an_unknown_function():
    async def on_result(result: ToolResult) -> None:
        raise AssertionError("answered at once")

    async def send(digits: str) -> None:
        raise AssertionError("not sent")

    tools = CallTools(Toolbox(parse_tools({"end_call": True}, {})), CONTEXT, on_result, send_digits=send)
    result = tools.start(RunTool("c1", "send_dtmf", '{"digits": "1"}'))
    assert result is not None and result.outcome == "unknown_tool"
