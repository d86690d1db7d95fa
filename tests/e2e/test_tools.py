"""Tools through the real app, both dialects: the echo line calls them on a script, the gateway runs them (an HTTP
tool against a loopback API, the built-ins), answers, and the caller hears the outcome; end_call hangs up only
once the goodbye has played; transfer_call reaches a loopback fake of Twilio's REST API for an allowed
destination and is refused for any other; a tool's call and output survive a reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiohttp import web

from gateway.sim.audio import speech_like
from gateway.sim.call_command import format_report
from gateway.sim.caller import CallScript, SimulatedCaller
from gateway.sim.echo import EchoLine
from gateway.sim.echo_response import SPOKEN_MS_PER_CHAR
from gateway.tools.script import ScriptedTurn, ToolScript

from ..resilience.conftest import FakeTwilioRest, eventually, twilio_rest
from .conftest import AUTH_TOKEN, Gateway, sample, start_gateway

__all__ = ["twilio_rest"]  # the fixture

GOODBYE = "Thank you for calling, goodbye!"
SALES = "+14155550100"


@dataclass
class OrderApi:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    hold: asyncio.Event | None = None  # answer only once this is set
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({"order_id": request.match_info["order_id"], "headers": dict(request.headers)})
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        return web.json_response({"order_id": request.match_info["order_id"], "status": "shipped"})


@pytest.fixture
async def order_api() -> AsyncIterator[OrderApi]:
    api = OrderApi()
    app = web.Application()
    app.router.add_get("/orders/{order_id}", api.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    api.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield api
    if api.hold is not None:
        api.hold.set()
    await runner.cleanup()


def tools_file(tmp_path: Path, api: OrderApi) -> str:
    path = tmp_path / "tools.yaml"
    path.write_text(yaml.safe_dump({
        "http_tools": [{
            "name": "order_status", "description": "Look up an order.",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                           "required": ["order_id"]},
            "url": api.url + "/orders/{order_id}", "headers": {"Authorization": "Bearer ${ORDER_API_KEY}"},
            "timeout_s": 10}],
        "end_call": True,
        "transfer_call": {"destinations": {
            "sales": {"number": SALES, "handoff": "Connecting you with sales."},
            "support": {"sip": "sip:support@pbx.example.com"}}},
    }))
    return str(path)


async def line_with(script: dict[int, ScriptedTurn]) -> EchoLine:
    line = EchoLine(pace=2.0, delta_ms=100, tool_script=ToolScript(script))
    await line.start()
    return line


async def gateway_with(line: EchoLine, dialect: str, tmp_path: Path, api: OrderApi, **env: str):
    return await start_gateway(line, dialect, TOOLS_FILE=tools_file(tmp_path, api), ORDER_API_KEY="order-key-42",
                               CALL_REPORTS_DIR=str(tmp_path / "reports"), **env)


async def summary_of(gateway: Gateway, tmp_path: Path) -> dict[str, Any]:
    await asyncio.wait_for(gateway.state.idle.wait(), 5.0)
    await asyncio.wait_for(gateway.state.reports._queue.join(), 5.0)
    lines = [line for f in sorted((tmp_path / "reports").glob("calls-*.jsonl")) for line in f.read_bytes().splitlines()]
    assert len(lines) == 1
    return orjson.loads(lines[0])


def items_created(session) -> list[dict[str, Any]]:
    return [e["item"] for e in session.received if e["type"] == "conversation.item.create"]


async def test_a_scripted_tool_call_is_run_answered_and_spoken_back(dialect: str, tmp_path: Path, order_api: OrderApi):
    line = await line_with({1: ScriptedTurn(call="order_status", arguments='{"order_id": "4711"}')})
    gateway, runner = await gateway_with(line, dialect, tmp_path, order_api)
    ok = {"tool": "order_status", "outcome": "ok"}
    before = sample("gateway_tool_calls_total", ok)
    try:
        report = await SimulatedCaller(gateway.url).run(CallScript(utterances=[speech_like(600, seed=1)]))
        assert report.errors == [] and report.closed_by == "caller"
        summary = await summary_of(gateway, tmp_path)
    finally:
        await runner.cleanup()
        await line.stop()
    assert [r["order_id"] for r in order_api.requests] == ["4711"]
    headers = order_api.requests[0]["headers"]
    assert headers["Authorization"] == "Bearer order-key-42" and headers["X-Call-Id"] == report.call_sid
    session = line.sessions[0]
    assert session.errors_sent == []
    update = next(e for e in session.received if e["type"] == "session.update")["session"]
    assert [t["name"] for t in update["tools"]] == ["order_status", "end_call", "transfer_call"]
    call = next(e for e in session.sent if e["type"] == "response.function_call_arguments.done")
    (output,) = [i for i in items_created(session) if i["type"] == "function_call_output"]
    assert output["call_id"] == call["call_id"]
    assert orjson.loads(output["output"]) == {"order_id": "4711", "status": "shipped"}
    kinds = [e["type"] for e in session.received if e["type"] in ("conversation.item.create", "response.create")]
    assert kinds == ["conversation.item.create", "response.create"]  # the output, then the answer to it
    # The answer "speaks" the output: a tone as long as the output's text, all of it heard.
    assert len(report.heard) == 8 * SPOKEN_MS_PER_CHAR * len(output["output"])
    assert sample("gateway_tool_calls_total", ok) == before + 1
    assert summary["tool_calls"] == [{"name": "order_status", "call_id": call["call_id"], "outcome": "ok",
                                      "duration_ms": summary["tool_calls"][0]["duration_ms"],
                                      "arguments": '{"order_id": "4711"}'}]
    assert summary["outcome"] == "completed"


@pytest.mark.parametrize("call_first", [False, True], ids=["call_after_goodbye", "call_before_goodbye"])
async def test_end_call_hangs_up_only_after_the_goodbye_played(dialect: str, tmp_path: Path, order_api: OrderApi,
                                                               call_first: bool):
    line = await line_with({1: ScriptedTurn(say=GOODBYE, call="end_call", arguments='{"reason": "done"}',
                                            call_first=call_first)})
    gateway, runner = await gateway_with(line, dialect, tmp_path, order_api)
    labels = {"carrier": "twilio", "provider": "custom", "outcome": "agent_ended"}
    before = sample("gateway_calls_total", labels)
    try:
        caller = SimulatedCaller(gateway.url)
        # The caller would wait 6 s in silence before hanging up: the gateway must hang up first.
        report = await caller.run(CallScript(utterances=[speech_like(600, seed=2)], hangup_after_idle_ms=6000))
        summary = await summary_of(gateway, tmp_path)
    finally:
        await runner.cleanup()
        await line.stop()
    assert report.errors == [], report.errors
    assert report.closed_by == "gateway" and report.close_code == 1000
    goodbye_bytes = 8 * SPOKEN_MS_PER_CHAR * len(GOODBYE)
    # Sent at twice real time, played at real time: all of it was heard before the line went down.
    assert len(report.heard) >= goodbye_bytes
    end = next(t for t, name, _ in report.events if name == "agent_audio_end")
    closed = next(t for t, name, _ in report.events if name == "closed_by_gateway")
    start = next(t for t, name, _ in report.events if name == "agent_audio_start")
    assert end - start >= SPOKEN_MS_PER_CHAR * len(GOODBYE) - 1
    assert 0 <= closed - end < 1000, (end, closed)  # at the goodbye's end: not at the call, not on a timer
    assert "the gateway hung up" in format_report(report)  # what `python -m gateway call` prints
    session = line.sessions[0]
    (output,) = [i for i in items_created(session) if i["type"] == "function_call_output"]
    assert output["output"] == "ok"
    assert not [e for e in session.received if e["type"] == "response.create"]  # nothing more was asked
    assert summary["outcome"] == "agent_ended" and summary["reason"] == "the agent ended the call (done)"
    assert summary["tool_calls"][0]["name"] == "end_call" and summary["tool_calls"][0]["outcome"] == "ok"
    assert sample("gateway_calls_total", labels) == before + 1


@pytest.fixture
def signed(twilio_rest: FakeTwilioRest) -> dict[str, str]:
    return {"TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_API_BASE_URL": twilio_rest.url}


async def test_transfer_to_an_allowed_destination_goes_through_twilio(
        dialect: str, tmp_path: Path, order_api: OrderApi, twilio_rest: FakeTwilioRest, signed: dict[str, str]):
    line = await line_with({1: ScriptedTurn(call="transfer_call", arguments='{"destination": "sales"}')})
    gateway, runner = await gateway_with(line, dialect, tmp_path, order_api, **signed)
    before = sample("gateway_transfers_total", {"result": "transferred"})
    try:
        caller = SimulatedCaller(gateway.url, auth_token=AUTH_TOKEN)
        report = await caller.run(CallScript(utterances=[speech_like(600, seed=3)], hangup_after_idle_ms=6000))
        summary = await summary_of(gateway, tmp_path)
    finally:
        await runner.cleanup()
        await line.stop()
    assert report.closed_by == "gateway"
    (request,) = twilio_rest.requests
    assert request["call"] == caller.call_sid and request["user"] == caller.account_sid
    assert f"<Dial><Number>{SALES}</Number></Dial>" in request["twiml"]
    session = line.sessions[0]
    # The hand-off line was asked for after the output (the echo line speaks the output as it), and heard.
    assert [e["type"] for e in session.received if e["type"] in ("conversation.item.create", "response.create")] == [
        "conversation.item.create", "response.create"]
    say = next(e for e in session.received if e["type"] == "response.create")
    assert say["response"]["instructions"].endswith("Connecting you with sales.")
    (output,) = [i for i in items_created(session) if i["type"] == "function_call_output"]
    assert len(report.heard) == 8 * SPOKEN_MS_PER_CHAR * len(output["output"]) and not report.clears  # all heard
    assert summary["outcome"] == "transferred" and summary["reason"] == "transferred to sales"
    assert summary["transfers"] == ["transferred"]
    assert sample("gateway_transfers_total", {"result": "transferred"}) == before + 1


async def test_transfer_anywhere_else_is_refused(dialect: str, tmp_path: Path, order_api: OrderApi,
                                                 twilio_rest: FakeTwilioRest, signed: dict[str, str]):
    # A number the model made up (SIP URIs and unknown names: tests/tools/test_http_tool.py, the same check).
    args = orjson.dumps({"destination": "+19995550000"}).decode()
    line = await line_with({1: ScriptedTurn(call="transfer_call", arguments=args)})
    gateway, runner = await gateway_with(line, dialect, tmp_path, order_api, **signed)
    before = sample("gateway_transfers_total", {"result": "refused"})
    try:
        report = await SimulatedCaller(gateway.url, auth_token=AUTH_TOKEN).run(
            CallScript(utterances=[speech_like(600, seed=4)]))
        summary = await summary_of(gateway, tmp_path)
    finally:
        await runner.cleanup()
        await line.stop()
    assert twilio_rest.requests == []
    assert report.closed_by == "caller" and report.errors == []
    (output,) = [i for i in items_created(line.sessions[0]) if i["type"] == "function_call_output"]
    assert "not allowed" in orjson.loads(output["output"])["error"]
    assert len(report.heard) == 8 * SPOKEN_MS_PER_CHAR * min(len(output["output"]), 3000 // SPOKEN_MS_PER_CHAR)
    assert summary["outcome"] == "completed" and summary["tool_calls"][0]["outcome"] == "refused"
    assert sample("gateway_transfers_total", {"result": "refused"}) == before + 1


async def test_a_tool_call_and_its_output_survive_reconnects(dialect: str, tmp_path: Path, order_api: OrderApi):
    order_api.hold = asyncio.Event()
    line = await line_with({1: ScriptedTurn(call="order_status", arguments='{"order_id": "4711"}')})
    gateway, runner = await gateway_with(line, dialect, tmp_path, order_api)
    try:
        caller = SimulatedCaller(gateway.url)
        await caller.connect()
        call = asyncio.create_task(caller.speak(CallScript(utterances=[speech_like(600, seed=5)],
                                                           hangup_after_idle_ms=4000)))
        await asyncio.wait_for(order_api.arrived.wait(), 8.0)
        first = line.sessions[0]
        call_id = next(e for e in first.sent if e["type"] == "response.function_call_arguments.done")["call_id"]
        await first.close(1011, "server going away")  # the session drops while the tool runs

        second = await line.wait_for_session(1)
        restored = await second.wait_for_event("conversation.item.create")
        assert restored["item"] == {"type": "function_call", "call_id": call_id, "name": "order_status",
                                    "arguments": '{"order_id": "4711"}'}
        order_api.hold.set()  # the tool answers: its output goes to the new session, which answers it
        output = await second.wait_for_event("conversation.item.create", count=2)
        assert output["item"]["type"] == "function_call_output" and output["item"]["call_id"] == call_id
        await second.wait_for_event("response.create")
        await eventually(lambda: any(e["type"] == "response.done" for e in second.sent), 5.0, "the spoken output")
        await second.close(1011, "server going away again")  # and once more: both items are replayed

        third = await line.wait_for_session(2)
        await third.wait_for_event("conversation.item.create", count=2)
        report = await call
    finally:
        await runner.cleanup()
        await line.stop()
    assert [s.errors_sent for s in line.sessions] == [[], [], []]  # every replayed item was accepted
    replay = [(i["type"], i.get("call_id")) for i in items_created(third)]
    assert replay[:2] == [("function_call", call_id), ("function_call_output", call_id)]
    spoken = next(e for e in second.sent if e["type"] == "response.done")["response"]["output"][0]
    assert "shipped" in spoken["content"][0]["transcript"]
    assert report.errors == [] and len(report.heard) > 0
    assert gateway.state.settings.max_reconnects >= 2


async def test_end_call_hangs_up_through_the_carriers_call_control(dialect: str, tmp_path: Path, order_api: OrderApi,
                                                                   twilio_rest: FakeTwilioRest,
                                                                   signed: dict[str, str]):
    line = await line_with({1: ScriptedTurn(say=GOODBYE, call="end_call")})
    gateway, runner = await gateway_with(line, dialect, tmp_path, order_api, **signed)
    try:
        caller = SimulatedCaller(gateway.url, auth_token=AUTH_TOKEN)
        report = await caller.run(CallScript(utterances=[speech_like(600, seed=6)], hangup_after_idle_ms=6000))
        summary = await summary_of(gateway, tmp_path)
    finally:
        await runner.cleanup()
        await line.stop()
    (request,) = twilio_rest.requests  # Twilio is told to end the call, then the stream is closed
    assert request["call"] == caller.call_sid and "<Hangup" in request["twiml"]
    assert report.closed_by == "gateway" and len(report.heard) >= 8 * SPOKEN_MS_PER_CHAR * len(GOODBYE)
    assert summary["outcome"] == "agent_ended" and summary["reason"] == "the agent ended the call"
