"""Keypad input, send_dtmf and a silent line through the real app, over real sockets, both dialects: the
caller's keys reach the model as a user message (what the echo line received), a sensitive entry stays out
of every log line and the call summary, the model's keys reach a Plivo caller on the stream, and a silent
caller is checked on, then hears a goodbye before the gateway hangs up (outcome idle)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import orjson
import structlog
import yaml

from gateway.observability.logging import configure_logging
from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller
from gateway.sim.echo import EchoLine
from gateway.sim.echo_response import SPOKEN_MIN_MS, SPOKEN_MS_PER_CHAR
from gateway.sim.plivo_caller import PlivoCaller
from gateway.tools.script import ScriptedTurn, ToolScript

from .conftest import Gateway, sample, start_gateway

CHECK_IN = "Are you still there?"
GOODBYE = "It seems you have gone. Goodbye!"


def spoken_ms(text: str) -> int:
    """How long the echo line "speaks" a line (a tone per character, gateway.sim.echo_response.spoken)."""
    return max(SPOKEN_MIN_MS, SPOKEN_MS_PER_CHAR * len(text))


def tools_file(tmp_path: Path, **sections: Any) -> str:
    path = tmp_path / "tools.yaml"
    path.write_text(yaml.safe_dump(sections))
    return str(path)


async def summary_of(gateway: Gateway, tmp_path: Path) -> dict[str, Any]:
    await asyncio.wait_for(gateway.state.idle.wait(), 5.0)
    await asyncio.wait_for(gateway.state.reports._queue.join(), 5.0)
    (line,) = [line for f in sorted((tmp_path / "reports").glob("calls-*.jsonl"))
               for line in f.read_bytes().splitlines()]
    return orjson.loads(line)


def user_texts(session) -> list[str]:
    return [part["text"] for e in session.received if e["type"] == "conversation.item.create"
            and e["item"].get("role") == "user" for part in e["item"]["content"]]


async def test_keys_reach_the_model_as_a_message_and_are_answered(echo: EchoLine, dialect: str, tmp_path: Path):
    gateway, runner = await start_gateway(echo, dialect, TOOLS_FILE=tools_file(tmp_path, dtmf={"mode": "collect"}),
                                          CALL_REPORTS_DIR=str(tmp_path / "reports"))
    try:
        report = await SimulatedCaller(gateway.url).run(CallScript(utterances=[speech_like(600, seed=1)],
                                                                   keys="4711#"))
        summary = await summary_of(gateway, tmp_path)
    finally:
        await runner.cleanup()
    assert report.errors == [] and report.keys_turn == 1
    text = "The caller entered 4711 on the keypad."
    session = echo.sessions[0]
    assert user_texts(session) == [text]
    kinds = [e["type"] for e in session.received if e["type"] in ("conversation.item.create", "response.create")]
    assert kinds == ["conversation.item.create", "response.create"]  # the message, then the answer to it
    # The echo line "speaks" the message back: the caller heard that answer after the last key.
    assert report.answer_heard_after_ms[1] is not None
    assert summary["keypad"] == [{"digits": "4711", "count": 4, "sensitive": False}]
    assert summary["keys_pressed"] == 5
    assert any(line["role"] == "assistant" and line["text"] == text for line in summary["transcript"])


async def test_a_sensitive_entry_is_in_no_log_line_and_not_in_the_summary(echo: EchoLine, dialect: str,
                                                                          tmp_path: Path):
    keypad = {"mode": "collect", "sensitive": True, "template": "Card number: {digits}"}
    gateway, runner = await start_gateway(echo, dialect, TOOLS_FILE=tools_file(tmp_path, dtmf=keypad),
                                          CALL_REPORTS_DIR=str(tmp_path / "reports"),
                                          INPUT_TRANSCRIPTION_MODEL="whisper-1")
    buffer = io.StringIO()
    configure_logging("debug", "json", stream=buffer)
    try:
        report = await SimulatedCaller(gateway.url).run(CallScript(utterances=[speech_like(600, seed=2)],
                                                                   keys="4929123456781234#"))
        summary = await summary_of(gateway, tmp_path)
    finally:
        structlog.reset_defaults()
        await runner.cleanup()
    assert report.errors == []
    card = "4929123456781234"
    assert user_texts(echo.sessions[0]) == [f"Card number: {card}"]  # the model gets the keys
    logs = buffer.getvalue()
    lines = [orjson.loads(line) for line in logs.splitlines()]
    assert card not in logs and "1234" not in logs  # not the entry, not its last digits
    entry = next(line for line in lines if line["event"] == "keypad_input")
    assert (entry["digits"], entry["count"]) == ("*" * 16, 16)
    # The echo line read the message back: its transcript is logged, and masked.
    said = [line["text"] for line in lines if line["event"] == "transcript" and line["role"] == "assistant"]
    assert "Card number: " + "*" * 16 in said
    assert card not in orjson.dumps(summary).decode()
    assert summary["keypad"] == [{"digits": "*" * 16, "count": 16, "sensitive": True}]


async def test_the_models_keys_reach_a_plivo_caller_on_the_stream(dialect: str, tmp_path: Path):
    line = EchoLine(pace=2.0, delta_ms=100,
                    tool_script=ToolScript({1: ScriptedTurn(call="send_dtmf", arguments='{"digits": "1#"}')}))
    await line.start()
    gateway, runner = await start_gateway(line, dialect, TOOLS_FILE=tools_file(tmp_path, send_dtmf=True),
                                          CALL_REPORTS_DIR=str(tmp_path / "reports"))
    out = {"direction": "outbound"}
    before = sample("gateway_dtmf_keys_total", out)
    try:
        report = await PlivoCaller(gateway.url).run(CallScript(utterances=[speech_like(600, seed=3)],
                                                               answer_timeout_ms=2500))
        summary = await summary_of(gateway, tmp_path)
        twilio = SimulatedCaller(gateway.url)  # a carrier that cannot send keys
        await twilio.connect()
        twilio_update = (await (await line.wait_for_session(1)).wait_for_event("session.update"))["session"]
        await twilio.close()
    finally:
        await runner.cleanup()
        await line.stop()
    assert report.keys_received == ["1#"]
    session = line.sessions[0]
    update = next(e for e in session.received if e["type"] == "session.update")["session"]
    assert [t["name"] for t in update["tools"]] == ["send_dtmf"]
    (output,) = [e["item"] for e in session.received if e["type"] == "conversation.item.create"]
    assert orjson.loads(output["output"])["keys_sent"] == 2 and "1#" not in output["output"]
    assert not [e for e in session.received if e["type"] == "response.create"]  # the menu answers, not the model
    assert summary["tool_calls"][0]["name"] == "send_dtmf" and summary["tool_calls"][0]["outcome"] == "ok"
    assert sample("gateway_dtmf_keys_total", out) == before + 2
    assert "tools" not in twilio_update  # not offered where the carrier cannot send keys


async def test_a_silent_caller_is_checked_on_then_hears_a_goodbye_and_is_hung_up(echo: EchoLine, dialect: str,
                                                                                   tmp_path: Path):
    gateway, runner = await start_gateway(echo, dialect, IDLE_REPROMPT_S="0.5", IDLE_HANGUP_S="1.2",
                                          IDLE_REPROMPT_INSTRUCTIONS=CHECK_IN, IDLE_HANGUP_INSTRUCTIONS=GOODBYE,
                                          CALL_REPORTS_DIR=str(tmp_path / "reports"))
    idle = {"carrier": "twilio", "provider": "custom", "outcome": "idle"}
    before, reprompts = sample("gateway_calls_total", idle), sample("gateway_idle_reprompts_total")
    try:
        # The caller says one thing, then stays silent (they would wait 20 s before hanging up themselves).
        report = await SimulatedCaller(gateway.url).run(CallScript(utterances=[speech_like(600, seed=4)],
                                                                   hangup_after_idle_ms=20_000))
        summary = await summary_of(gateway, tmp_path)
    finally:
        await runner.cleanup()
    assert report.errors == [] and report.closed_by == "gateway" and report.close_code == 1000
    session = echo.sessions[0]
    asked = [e["response"] for e in session.received if e["type"] == "response.create"]
    assert [r["metadata"]["purpose"] for r in asked] == ["idle_reprompt", "idle_goodbye"]
    assert asked[0]["instructions"].endswith(CHECK_IN) and asked[1]["instructions"].endswith(GOODBYE)
    # In order: the echo of the utterance, the check-in, the goodbye; the line went down after all of it played.
    said = [line["text"] for line in summary["transcript"] if line["role"] == "assistant"]
    assert said[-2:] == [CHECK_IN, GOODBYE]
    segments = [(t, data) for t, name, data in report.events if name == "agent_audio_end"]
    assert len(segments) == 3 and not any(data["cleared"] for _, data in segments)
    assert [round(data["played_ms"]) for _, data in segments[1:]] == [spoken_ms(CHECK_IN), spoken_ms(GOODBYE)]
    closed = next(t for t, name, _ in report.events if name == "closed_by_gateway")
    assert closed >= segments[-1][0]  # hung up once the goodbye had been heard
    assert summary["outcome"] == "idle" and summary["reason"] == "the caller was silent for 1.2 s"
    assert summary["idle_reprompts"] == 1
    assert sample("gateway_calls_total", idle) == before + 1
    assert sample("gateway_idle_reprompts_total") == reprompts + 1
