"""HTTP tools against a loopback aiohttp server: success, timeout, 500, oversized body, bad arguments; what the
request carries (encoded placeholders, query or JSON body, headers with secrets, the call's context); and the
runner's checks in front of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

from gateway.core.events import EndCall, RunTool, ToolResult, TransferTo
from gateway.tools.http_tool import CallContext, HttpToolClient
from gateway.tools.loader import parse_tools
from gateway.tools.runner import CallTools, Toolbox

CONTEXT = CallContext("CA123", "twilio", "+15005550006", "+15005550001")


@dataclass
class Api:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append({"method": request.method, "path": request.raw_path, "query": dict(request.query),
                              "headers": dict(request.headers), "body": body})
        kind = request.match_info["kind"]
        if kind == "slow":
            await self.release.wait()
        if kind == "error":
            return web.json_response({"error": "database down at 10.0.0.3"}, status=500)
        if kind == "big":
            return web.Response(body=b"x" * 5000, content_type="text/plain")
        if kind == "stream":  # no Content-Length: the cap is found while reading
            response = web.StreamResponse()
            await response.prepare(request)
            for _ in range(10):
                await response.write(b"y" * 1000)
            await response.write_eof()
            return response
        if kind == "empty":
            return web.Response(status=204)
        if kind == "redirect":
            raise web.HTTPFound("https://elsewhere.example.com/steal")
        return web.json_response({"order": request.match_info["rest"], "status": "shipped"})


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    fake = Api()
    app = web.Application()
    app.router.add_route("*", "/{kind}/{rest:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    fake.release.set()
    await runner.cleanup()


def toolbox(api: Api, path: str = "/ok/{order_id}", **over: Any) -> Toolbox:
    tool = {"name": "order_status", "description": "Order status.",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"},
                                                            "verbose": {"type": "boolean"}},
                           "required": ["order_id"], "additionalProperties": False},
            "url": api.url + path, "headers": {"Authorization": "Bearer ${ORDER_KEY}"}, "timeout_s": 0.5,
            "max_response_bytes": 2000, "error_message": "The order system is down.", **over}
    spec = parse_tools({"http_tools": [tool], "end_call": True,
                        "transfer_call": {"destinations": {"sales": {"number": "+14155550100", "handoff": "Hi."}}}},
                       {"ORDER_KEY": "order-key-123456"})
    return Toolbox(spec, HttpToolClient())


async def run(box: Toolbox, arguments: str, name: str = "order_status") -> ToolResult:
    results: list[ToolResult] = []
    done = asyncio.Event()

    async def on_result(result: ToolResult) -> None:
        results.append(result)
        done.set()

    tools = CallTools(box, CONTEXT, on_result)
    now = tools.start(RunTool("call_1", name, arguments))
    if now is not None:
        return now
    await asyncio.wait_for(done.wait(), 5)
    return results[0]


async def test_success_returns_the_body_and_sends_what_it_should(api: Api):
    box = toolbox(api)
    result = await run(box, '{"order_id": "47/11 ü", "verbose": true}')
    await box.close()
    assert (result.outcome, orjson.loads(result.output)) == ("ok", {"order": "47/11 ü", "status": "shipped"})
    request = api.requests[0]
    assert request["method"] == "GET" and request["path"].startswith("/ok/47%2F11%20%C3%BC?")
    assert request["query"] == {"verbose": "true"}
    headers = request["headers"]
    assert headers["Authorization"] == "Bearer order-key-123456"
    assert (headers["X-Call-Id"], headers["X-Call-Carrier"], headers["X-Call-From"], headers["X-Call-To"]) == (
        "CA123", "twilio", "+15005550006", "+15005550001")
    assert headers["User-Agent"].startswith("voice-gateway/")


async def test_post_sends_the_other_arguments_as_json(api: Api):
    box = toolbox(api, method="POST")
    result = await run(box, '{"order_id": "4711", "verbose": false}')
    await box.close()
    assert result.outcome == "ok"
    request = api.requests[0]
    assert request["path"] == "/ok/4711" and orjson.loads(request["body"]) == {"verbose": False}
    assert request["headers"]["Content-Type"] == "application/json"


async def test_timeout(api: Api):
    box = toolbox(api, path="/slow/{order_id}", timeout_s=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await run(box, '{"order_id": "1"}')
    await box.close()
    assert (result.outcome, orjson.loads(result.output)) == ("timeout", {"error": "The order system is down."})
    assert loop.time() - started < 2.0


async def test_server_error_gives_the_error_message_not_the_body(api: Api):
    box = toolbox(api, path="/error/{order_id}")
    result = await run(box, '{"order_id": "1"}')
    await box.close()
    assert result.outcome == "http_error"
    assert orjson.loads(result.output) == {"error": "The order system is down.", "status": 500}
    assert "10.0.0.3" not in result.output


@pytest.mark.parametrize("path", ["/big/{order_id}", "/stream/{order_id}"])
async def test_oversized_body_is_refused(api: Api, path: str):
    box = toolbox(api, path=path)
    result = await run(box, '{"order_id": "1"}')
    await box.close()
    assert (result.outcome, orjson.loads(result.output)) == ("too_large", {"error": "The order system is down."})


async def test_empty_body_and_redirects(api: Api):
    box = toolbox(api, path="/empty/{order_id}")
    assert orjson.loads((await run(box, '{"order_id": "1"}')).output) == {"ok": True, "status": 204}
    redirect = toolbox(api, path="/redirect/{order_id}")
    result = await run(redirect, '{"order_id": "1"}')
    assert result.outcome == "http_error" and orjson.loads(result.output)["status"] == 302  # not followed
    await box.close()
    await redirect.close()


async def test_unreachable_endpoint_fails_cleanly():
    spec = parse_tools({"http_tools": [{"name": "t", "description": "d", "url": "http://127.0.0.1:9/x"}]}, {})
    box = Toolbox(spec)
    result = await run(box, "{}", name="t")
    await box.close()
    assert result.outcome == "failed" and "error" in orjson.loads(result.output)


@pytest.mark.parametrize(("arguments", "message"), [
    ('{"order_id": 47', "not valid JSON"),
    ('["4711"]', "must be a JSON object"),
    ("{}", "'order_id' is a required property"),
    ('{"order_id": 4711}', "4711 is not of type 'string'"),
    ('{"order_id": "1", "extra": 1}', "Additional properties are not allowed"),
    ('{"order_id": ".."}', "order_id must not be empty, '.' or '..'"),
])
async def test_bad_arguments_are_answered_without_a_request(api: Api, arguments: str, message: str):
    box = toolbox(api)
    result = await run(box, arguments)
    await box.close()
    assert result.outcome == "bad_arguments"
    assert message in orjson.loads(result.output)["error"]
    assert api.requests == []


async def test_unknown_function(api: Api):
    result = await run(toolbox(api), "{}", name="delete_everything")
    assert result.outcome == "unknown_tool"
    assert "order_status, end_call, transfer_call" in orjson.loads(result.output)["error"]


async def test_builtins_answer_at_once(api: Api):
    box = toolbox(api)
    end = await run(box, '{"reason": "done"}', name="end_call")
    assert end == ToolResult("call_1", "ok", "ok", EndCall("done", 10.0))
    assert (await run(box, "", name="end_call")).then == EndCall("", 10.0)  # no arguments at all
    sales = await run(box, '{"destination": "sales"}', name="transfer_call")
    assert sales.then == TransferTo("sales", "Hi.", 10.0) and sales.outcome == "ok"
    for bad in ('{"destination": "+19995550000"}', '{"destination": "sip:evil@x"}', "{}", '{"destination": 1}'):
        refused = await run(box, bad, name="transfer_call")
        assert (refused.outcome, refused.then) == ("refused", None), bad
        assert "sales" in orjson.loads(refused.output)["error"]


async def test_a_calls_tools_are_bounded_and_cancelled_with_it(api: Api):
    box = toolbox(api, path="/slow/{order_id}", timeout_s=30)
    results: list[ToolResult] = []

    async def on_result(result: ToolResult) -> None:
        results.append(result)

    tools = CallTools(box, CONTEXT, on_result, limit=2)
    for i in range(5):
        assert tools.start(RunTool(f"call_{i}", "order_status", '{"order_id": "1"}')) is None
    for _ in range(100):
        if len(api.requests) >= 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert len(api.requests) == 2 and tools.running == 5  # two at a time; the others wait their turn
    await tools.cancel()
    assert tools.running == 0 and results == []
    await box.close()


def test_formats_are_checked_too():
    parameters = {"type": "object", "properties": {"day": {"type": "string", "format": "date"}}, "required": ["day"]}
    spec = parse_tools({"http_tools": [{"name": "book", "description": "Book a day.", "url": "https://h/book",
                                        "method": "POST", "parameters": parameters}]}, {})
    box = Toolbox(spec)
    bad = box.check(RunTool("c1", "book", '{"day": "tomorrow"}'))
    assert isinstance(bad, ToolResult) and bad.outcome == "bad_arguments" and "'date'" in bad.output
    assert box.check(RunTool("c2", "book", '{"day": "2026-12-01"}')) == {"day": "2026-12-01"}
