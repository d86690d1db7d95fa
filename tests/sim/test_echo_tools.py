"""The echo line's tool script over real loopback sockets: a scripted turn answers with a function call (the
events a Realtime server sends for one, per dialect), a scripted line spoken before or after it, and a
function's output spoken back on the response that follows it; and the script file's checks."""

from __future__ import annotations

import orjson
import pytest

from gateway.config import ConfigError, load_settings
from gateway.sim.echo_response import SPOKEN_MS_PER_CHAR
from gateway.tools.script import ScriptedTurn, ToolScript, load_script, parse_script

from .test_echo import HEADERS, TURN, UPDATES, MakeLine, audio_of, make_line, open_session, peer, skeleton

__all__ = ["make_line"]  # the fixture, shared with test_echo

SCRIPT = ToolScript({
    1: ScriptedTurn(call="order_status", arguments='{"order_id":"4711"}'),
    2: ScriptedTurn(say="Goodbye now!", call="end_call", arguments="{}", call_first=False),
    3: ScriptedTurn(say="Bye!", call="end_call", arguments="{}", call_first=True),
})


async def turn(p, dialect: str) -> list[dict]:
    await p.append(TURN)
    return await p.until("response.done")


def function_events(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"].startswith("response.function_call_arguments")
            or (e["type"].startswith("response.output_item") and e["item"]["type"] == "function_call")]


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_scripted_turns(make_line: MakeLine, dialect: str) -> None:
    line = await make_line(tool_script=SCRIPT)
    async with peer(line, headers=HEADERS[dialect]) as p:
        await open_session(p, dialect)
        await p.send({"type": "session.update", "session": UPDATES[dialect]})
        await p.recv()

        first = await turn(p, dialect)
        response = skeleton(first)[skeleton(first).index("response.created"):]
        user_item = "conversation.item.created" if dialect == "beta" else "conversation.item.added"
        assert response == ["response.created", "rate_limits.updated", "response.output_item.added", user_item,
                            "response.function_call_arguments.done", "response.output_item.done",
                            *([] if dialect == "beta" else ["conversation.item.done"]), "response.done"]
        done = next(e for e in first if e["type"] == "response.function_call_arguments.done")
        assert done["arguments"] == '{"order_id":"4711"}' and done["call_id"].startswith("call_")
        assert ("name" in done) == (dialect == "ga")  # beta's event has no name
        added = next(e for e in first if e["type"] == "response.output_item.added")
        assert added["item"]["name"] == "order_status" and added["item"]["arguments"] == ""
        output = first[-1]["response"]["output"]
        assert [(i["type"], i["status"]) for i in output] == [("function_call", "completed")]
        assert audio_of(first, dialect) == b""

        # The gateway answers: the output is spoken back on the response it asks for.
        result = '{"status":"shipped"}'
        item = {"type": "function_call_output", "call_id": done["call_id"], "output": result}
        await p.send({"type": "conversation.item.create", "item": item})
        await p.send({"type": "response.create"})
        spoken = await p.until("response.done")
        assert len(audio_of(spoken, dialect)) == 8 * SPOKEN_MS_PER_CHAR * len(result)  # its length encodes it
        assert spoken[-1]["response"]["output"][0]["content"][0]["transcript"] == result

        second = await turn(p, dialect)  # the line, then the call
        kinds = [e["item"]["type"] for e in second if e["type"] == "response.output_item.done"]
        assert kinds == ["message", "function_call"]
        assert [i["type"] for i in second[-1]["response"]["output"]] == ["message", "function_call"]
        said = audio_of(second, dialect)
        assert len(said) == 8 * SPOKEN_MS_PER_CHAR * len("Goodbye now!")
        fc = function_events(second)
        assert {e["output_index"] for e in fc} == {1}

        third = await turn(p, dialect)  # the call, then the line
        kinds = [e["item"]["type"] for e in third if e["type"] == "response.output_item.done"]
        assert kinds == ["function_call", "message"]
        assert {e["output_index"] for e in function_events(third)} == {0}
        assert len(audio_of(third, dialect)) == 8 * 400  # short lines last 400 ms at least


async def test_the_fourth_turn_is_an_echo_again(make_line: MakeLine) -> None:
    line = await make_line(tool_script=ToolScript({1: ScriptedTurn(say="Hello there")}))
    async with peer(line) as p:
        await open_session(p, "ga")
        first = await turn(p, "ga")
        assert first[-1]["response"]["output"][0]["content"][0]["transcript"] == "Hello there"
        second = await turn(p, "ga")
        assert audio_of(second, "ga") == TURN[0: 900 * 8]  # not scripted: the echo


async def test_a_scripted_call_cancelled_by_speech_ends_its_response(make_line: MakeLine) -> None:
    line = await make_line(pace=4.0, tool_script=ToolScript({1: ScriptedTurn(say="x" * 75, call="end_call")}))
    async with peer(line) as p:
        await open_session(p, "ga")
        await p.append(TURN)
        await p.until("response.output_audio.delta")
        await p.append(TURN)  # the caller speaks over the line: cancelled before its function call
        events = await p.until("response.done")
        assert events[-1]["response"]["status"] == "cancelled"
        assert not function_events(events)
        assert (await p.until("response.done"))[-1]["response"]["status"] == "completed"  # turn 2: the echo


def test_script_checks() -> None:
    script = parse_script({"turns": {1: {"call": "a", "arguments": {"x": 1}}, "2": {"say": "hi", "call_first": True}}})
    assert script.turns[1] == ScriptedTurn(None, "a", '{"x":1}', False)
    assert script.turns[2].say == "hi" and script.calls() == {"a"}
    assert parse_script({"turns": {1: {"call": "a", "arguments": "{bad json"}}}).turns[1].arguments == "{bad json"
    with pytest.raises(ConfigError) as info:
        parse_script({"turns": {0: {"say": "x"}, 2: {}, 3: {"say": 5, "colour": 1}, 4: {"call": "a", "arguments": 7}}},
                     "s.yaml")
    text = "\n".join(info.value.errors)
    for expected in ("turns.0: a turn is a number from 1", "turns.2: needs say, call or both",
                     "turns.3.say: must be a non-empty string", "turns.3: unknown fields colour",
                     "turns.4.arguments: must be a mapping, or a string sent as is"):
        assert f"ECHO_TOOL_SCRIPT s.yaml: {expected}" in text
    with pytest.raises(ConfigError, match="must hold `turns:`"):
        parse_script([1, 2])


def test_script_setting(tmp_path) -> None:
    path = tmp_path / "script.json"
    path.write_text(orjson.dumps({"turns": {"1": {"call": "end_call"}}}).decode())
    settings = load_settings({"ECHO_TOOL_SCRIPT": str(path)})
    assert settings.echo_tool_script == ToolScript({1: ScriptedTurn(call="end_call")})
    online = load_settings({"ECHO_TOOL_SCRIPT": str(path), "REALTIME_URL": "ws://127.0.0.1:9/v1/realtime"})
    assert any("ECHO_TOOL_SCRIPT is set but" in w for w in online.warnings)
    with pytest.raises(ConfigError, match="ECHO_TOOL_SCRIPT cannot be read"):
        load_settings({"ECHO_TOOL_SCRIPT": str(tmp_path / "missing.yaml")})
    assert load_script(None) is None


def test_the_example_script_loads() -> None:
    from pathlib import Path

    script = load_script(str(Path(__file__).resolve().parents[2] / "deploy" / "echo-script.example.yaml"))
    assert script is not None and script.calls() == {"order_status", "transfer_call", "end_call"}


async def test_the_offline_gateway_serves_the_demo_order_api() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from gateway.app import create_app

    async with TestClient(TestServer(create_app(load_settings({})))) as client:
        order = await client.get("/demo/orders/4711")
        assert order.status == 200
        body = await order.json()
        assert body["order_id"] == "4711" and body["status"] in ("received", "packed", "shipped", "out for delivery",
                                                                  "delivered")
        assert (await client.get("/demo/orders/4711")).status == 200 and body == await (
            await client.get("/demo/orders/4711")).json()  # stable
        assert (await client.get("/demo/orders/..")).status == 404
    online = create_app(load_settings({"REALTIME_URL": "ws://127.0.0.1:9/v1/realtime"}))
    assert not [r for r in online.router.resources() if "demo" in r.canonical]  # only offline


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_a_user_message_of_text_and_an_idle_request_are_spoken_back(make_line: MakeLine, dialect: str) -> None:
    """What the offline demo shows of keypad input and of the silence handling: the echo line "speaks" a user
    message of text, and the instructions of an idle response (their last paragraph)."""
    line = await make_line()
    async with peer(line, headers=HEADERS[dialect]) as p:
        await open_session(p, dialect)
        text = "The caller entered 4711 on the keypad."
        await p.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
        await p.send({"type": "response.create"})
        said = await p.until("response.done")
        assert len(audio_of(said, dialect)) == 8 * SPOKEN_MS_PER_CHAR * len(text)
        assert said[-1]["response"]["output"][0]["content"][0]["transcript"] == text

        check_in = {"instructions": "You are a helpful agent.\n\nAre you still there?",
                    "metadata": {"purpose": "idle_reprompt"}}
        await p.send({"type": "response.create", "response": check_in})
        said = await p.until("response.done")
        assert said[-1]["response"]["output"][0]["content"][0]["transcript"] == "Are you still there?"
        # Instructions without an idle purpose (a greeting, a hand-off line) keep the echo line's old answer
        # (after an answer, with no caller audio yet: the chime).
        await p.send({"type": "response.create", "response": {"instructions": "Greet the caller."}})
        said = await p.until("response.done")
        assert said[-1]["response"]["output"][0]["content"][0]["transcript"] == "<greeting chime>"
