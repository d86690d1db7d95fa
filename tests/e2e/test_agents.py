"""Agent profiles through the real app: two numbers, two agents; variables; cost; reload with a live call."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import orjson

from gateway.reload import reload_agents
from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller
from gateway.sim.echo import EchoLine
from gateway.sim.echo_response import SPOKEN_MS_PER_CHAR

from .conftest import sample, start_gateway
from .test_commands import clean_env, free_port, read_until

SALES_GREETING = "Thanks for calling Acme sales, this is Ada. What would you like to power?"
SUPPORT_GREETING = "Support. Your order number?"
AGENTS = f"""
default: support
agents:
  sales:
    instructions: "Sales line {{{{to}}}}; the caller is {{{{from}}}}."
    greeting: "{SALES_GREETING}"
    voice: marin
  support:
    instructions: Support line.
    greeting: "{SUPPORT_GREETING}"
    voice: cedar
    model: gpt-realtime-mini
routes:
  "+15005550001": sales
  "+1500555*": support
"""
PRICES = "gpt-realtime-mini: {audio_input: 10, audio_output: 20, text_input: 0.6, text_output: 2.4}\n"


def summaries(directory: Path) -> list[dict]:
    return [orjson.loads(line) for f in sorted(directory.glob("calls-*.jsonl")) for line in f.read_text().splitlines()]


def update_of(echo: EchoLine, index: int) -> dict:
    return next(e for e in echo.sessions[index].received if e["type"] == "session.update")["session"]


async def call(url: str, to: str, lead_silence_ms: float = 2500) -> object:
    caller = SimulatedCaller(url, to=to)
    return await caller.run(CallScript(utterances=[speech_like(400, seed=7)], lead_silence_ms=lead_silence_ms))


async def test_two_numbers_are_answered_by_two_agents(echo: EchoLine, dialect: str, tmp_path: Path):
    (tmp_path / "agents.yaml").write_text(AGENTS)
    (tmp_path / "prices.yaml").write_text(PRICES)
    reports = tmp_path / "reports"
    gw, runner = await start_gateway(echo, dialect, AGENTS_FILE=str(tmp_path / "agents.yaml"),
                                     PRICES_FILE=str(tmp_path / "prices.yaml"), CALL_REPORTS_DIR=str(reports))
    try:
        sales_before = sample("gateway_calls_total", {"agent": "sales", "outcome": "completed"})
        support_before = sample("gateway_calls_total", {"agent": "support", "outcome": "completed"})
        sales = await call(gw.url, "+15005550001")
        support = await call(gw.url, "+15005550002")
        assert sales.errors == [] and support.errors == []
        await asyncio.wait_for(gw.state.idle.wait(), 5)
        await gw.state.reports.stop()  # flushes the summaries
    finally:
        await runner.cleanup()

    first, second = update_of(echo, 0), update_of(echo, 1)
    voice = (lambda s: s["audio"]["output"]["voice"]) if dialect == "ga" else (lambda s: s["voice"])
    assert first["instructions"] == "Sales line +15005550001; the caller is +15005550006."
    assert voice(first) == "marin"
    assert second["instructions"] == "Support line." and voice(second) == "cedar"
    # The support agent runs on its own model: the session's URL names it.
    assert echo.sessions[0].query.get("model") != "gpt-realtime-mini"
    assert echo.sessions[1].query["model"] == "gpt-realtime-mini"
    # Each caller heard its agent's greeting first (the echo line speaks a greeting as a tone as long as its text).
    for report, greeting in ((sales, SALES_GREETING), (support, SUPPORT_GREETING)):
        assert report.media_ms_received >= len(greeting) * SPOKEN_MS_PER_CHAR
    assert sample("gateway_calls_total", {"agent": "sales", "outcome": "completed"}) == sales_before + 1
    assert sample("gateway_calls_total", {"agent": "support", "outcome": "completed"}) == support_before + 1

    by_agent = {s["agent"]: s for s in summaries(reports)}
    assert set(by_agent) == {"sales", "support"}
    assert by_agent["sales"]["transcript"][0]["text"] == SALES_GREETING
    # Cost: only the support agent's model has a price; the echo line reports usage for its answers.
    assert by_agent["sales"]["cost"] is None
    cost = by_agent["support"]["cost"]
    assert cost["model"] == "gpt-realtime-mini" and cost["usd"] > 0
    tokens = by_agent["support"]["tokens"]
    expected = (tokens["input_audio"] * 10 + tokens["output_audio"] * 20 + tokens["input_text"] * 0.6
                + tokens["output_text"] * 2.4) / 1_000_000
    assert abs(cost["usd"] - expected) < 1e-6


async def test_an_unknown_number_gets_the_default_and_a_removed_agent_the_number_s(echo: EchoLine, tmp_path: Path):
    (tmp_path / "agents.yaml").write_text(AGENTS)
    gw, runner = await start_gateway(echo, "ga", AGENTS_FILE=str(tmp_path / "agents.yaml"))
    try:
        report = await call(gw.url, "+442071234567", lead_silence_ms=300)
        assert report.errors == [] and report.stream_parameters["agent"] == "support"
    finally:
        await runner.cleanup()
    assert update_of(echo, 0)["instructions"] == "Support line."


async def test_reload_keeps_the_live_call_on_its_agent_and_refuses_a_bad_file(echo: EchoLine, tmp_path: Path):
    agents = tmp_path / "agents.yaml"
    agents.write_text(AGENTS)
    gw, runner = await start_gateway(echo, "ga", AGENTS_FILE=str(agents))
    try:
        live = asyncio.create_task(call(gw.url, "+15005550001", lead_silence_ms=3000))
        await echo.wait_for_session(0)
        agents.write_text(AGENTS.replace("voice: marin", "voice: sage").replace(SALES_GREETING, "New sales hello."))
        reloaded = sample("gateway_agents_reloads_total", {"result": "reloaded"})
        assert await reload_agents(gw.state) is True
        assert sample("gateway_agents_reloads_total", {"result": "reloaded"}) == reloaded + 1
        assert not live.done()
        old = await live  # the live call finishes on the profile it started with
        assert old.errors == [] and old.closed_by == "caller"
        new = await call(gw.url, "+15005550001", lead_silence_ms=300)
        assert new.errors == []

        agents.write_text("agents:\n  sales: {voice: 7}\n")
        refused = sample("gateway_agents_reloads_total", {"result": "refused"})
        book = gw.state.agents
        assert await reload_agents(gw.state) is False
        assert gw.state.agents is book  # the old profiles stay
        assert sample("gateway_agents_reloads_total", {"result": "refused"}) == refused + 1
    finally:
        await runner.cleanup()
    old_update, new_update = update_of(echo, 0), update_of(echo, 1)
    assert old_update["audio"]["output"]["voice"] == "marin"
    assert new_update["audio"]["output"]["voice"] == "sage"


async def test_sighup_reloads_the_agents_file_of_a_running_gateway(tmp_path: Path):
    agents = tmp_path / "agents.yaml"
    agents.write_text(AGENTS)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--env-file", "none",
        env=clean_env(PORT=str(free_port()), AGENTS_FILE=str(agents)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[dict] = []
    try:
        assert proc.stdout is not None
        listening = await read_until(proc.stdout, "gateway_listening", lines)
        assert listening["agents"] == ["sales", "support"]
        agents.write_text(AGENTS.replace("  sales:", "  sales_v2:").replace(": sales\n", ": sales_v2\n"))
        proc.send_signal(signal.SIGHUP)
        reloaded = await read_until(proc.stdout, "agents_reloaded", lines)
        assert reloaded["added"] == ["sales_v2"] and reloaded["removed"] == ["sales"]
        agents.write_text("agents: {}\n")
        proc.send_signal(signal.SIGHUP)
        refused = await read_until(proc.stdout, "agents_reload_refused", lines)
        assert refused["kept"] == ["sales_v2", "support"] and any("at least one agent" in e for e in refused["errors"])
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
