"""A simulated call moves every metric; summaries are filed and posted; /calls; no secret in any log line."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
import structlog
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from gateway.observability.logging import configure_logging, register_secret
from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller
from gateway.sim.echo import EchoLine

from ..e2e.conftest import start_gateway

API_KEY = "sk-upstream-secret-0123456789"
TWILIO_TOKEN = "twilio-secret-token-abcdef"
ADMIN = "admin-secret-token-987654"
BARGE_IN = CallScript(utterances=[speech_like(1500, seed=11), speech_like(500, seed=12)], barge_in_after_ms=500)


async def scrape(url: str) -> dict[str, dict]:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    families = {}
    for family in text_string_to_metric_families(text):
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        families[family.name] = {"type": family.type, "samples": samples}
    return families


def value(families: dict, family: str, sample: str, **labels: str) -> float:
    return families.get(family, {"samples": {}})["samples"].get((sample, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def secured() -> AsyncIterator:
    echo = EchoLine(api_key=API_KEY, pace=2.0)
    await echo.start()
    gw, runner = await start_gateway(echo, "ga", REALTIME_API_KEY=API_KEY, TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
                                     ADMIN_TOKEN=ADMIN, INPUT_TRANSCRIPTION_MODEL="gpt-4o-transcribe")
    yield gw
    await runner.cleanup()
    await echo.stop()


EXPECTED = {
    "gateway_calls_active": "gauge", "gateway_calls": "counter", "gateway_call_duration_seconds": "histogram",
    "gateway_turn_latency_seconds": "histogram", "gateway_heard_latency_seconds": "histogram",
    "gateway_upstream_connect_seconds": "histogram", "gateway_barge_ins": "counter",
    "gateway_barge_in_reaction_seconds": "histogram", "gateway_truncation_heard_seconds": "histogram",
    "gateway_truncations_rejected": "counter", "gateway_audio_frames": "counter", "gateway_audio_seconds": "counter",
    "gateway_frames_dropped": "counter", "gateway_realtime_tokens": "counter", "gateway_responses": "counter",
    "gateway_upstream_errors": "counter", "gateway_carrier_protocol_errors": "counter",
    "gateway_event_loop_lag_seconds": "histogram", "gateway_webhook_requests": "counter",
    "gateway_stream_tokens_rejected": "counter",
}


async def test_a_call_with_a_barge_in_moves_the_metrics(secured):
    before = await scrape(secured.url)
    report = await SimulatedCaller(secured.url, auth_token=TWILIO_TOKEN).run(BARGE_IN)
    assert report.errors == [] and report.clears
    await asyncio.wait_for(secured.state.idle.wait(), 2)
    after = await scrape(secured.url)

    for name, kind in EXPECTED.items():
        assert after[name]["type"] == kind, name

    def grew(family: str, sample: str, by: float = 1, **labels: str) -> None:
        delta = value(after, family, sample, **labels) - value(before, family, sample, **labels)
        assert delta >= by, (sample, labels, delta)

    grew("gateway_calls", "gateway_calls_total", carrier="twilio", provider="custom", outcome="completed",
         agent="default")
    grew("gateway_call_duration_seconds", "gateway_call_duration_seconds_count")
    grew("gateway_turn_latency_seconds", "gateway_turn_latency_seconds_count", 2)
    grew("gateway_heard_latency_seconds", "gateway_heard_latency_seconds_count", 2)
    grew("gateway_upstream_connect_seconds", "gateway_upstream_connect_seconds_count", provider="custom")
    grew("gateway_barge_ins", "gateway_barge_ins_total")
    grew("gateway_barge_in_reaction_seconds", "gateway_barge_in_reaction_seconds_count")
    grew("gateway_truncation_heard_seconds", "gateway_truncation_heard_seconds_count")
    grew("gateway_audio_frames", "gateway_audio_frames_total", 100, direction="inbound")
    grew("gateway_audio_frames", "gateway_audio_frames_total", 5, direction="outbound")
    grew("gateway_audio_seconds", "gateway_audio_seconds_total", 2, direction="inbound")
    grew("gateway_realtime_tokens", "gateway_realtime_tokens_total", kind="output_audio")
    grew("gateway_realtime_tokens", "gateway_realtime_tokens_total", kind="input_audio")
    grew("gateway_responses", "gateway_responses_total", 1, status="completed")
    grew("gateway_webhook_requests", "gateway_webhook_requests_total", result="accepted")
    grew("gateway_event_loop_lag_seconds", "gateway_event_loop_lag_seconds_count")
    assert value(after, "gateway_calls_active", "gateway_calls_active") == 0
    # No per-call identifiers as labels.
    text = str(after)
    assert report.call_sid not in text and "+1500555" not in text


async def test_live_calls_are_listed_for_the_admin_only(secured):
    caller = SimulatedCaller(secured.url, auth_token=TWILIO_TOKEN)
    await caller.connect()
    session = await secured.echo.wait_for_session(0)
    await session.wait_for_event("session.update")
    async with aiohttp.ClientSession() as http:
        async with http.get(secured.url + "/calls") as resp:
            assert resp.status == 401
        async with http.get(secured.url + "/calls", headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        async with http.get(secured.url + "/calls", headers={"Authorization": f"Bearer {ADMIN}"}) as resp:
            assert resp.status == 200
            listing = await resp.json()
    await caller.send_stop()
    await caller.close()
    assert listing["active"] == 1
    assert listing["calls"][0]["call_sid"] == caller.call_sid
    assert listing["calls"][0]["upstream_ready"] is True


async def test_summary_is_filed_and_posted_with_the_truncation(tmp_path):
    posts: list[dict] = []
    attempts = []

    async def collect(request: web.Request) -> web.Response:
        attempts.append(1)
        if len(attempts) == 1:
            return web.Response(status=503)  # the first attempt fails: the sink retries
        posts.append(await request.json())
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/reports", collect)
    runner = web.AppRunner(receiver)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    report_url = f"http://127.0.0.1:{runner.addresses[0][1]}/reports"

    echo = EchoLine(pace=2.0)
    await echo.start()
    gw, gw_runner = await start_gateway(echo, "ga", CALL_REPORTS_DIR=str(tmp_path), CALL_REPORT_URL=report_url,
                                        CALL_REPORT_ALLOW_UNSIGNED="true",  # signed posts: test_signing.py
                                        CALL_REPORT_MASK_NUMBERS="true", INPUT_TRANSCRIPTION_MODEL="whisper-1")
    try:
        report = await SimulatedCaller(gw.url, from_="+14155550123").run(BARGE_IN)
        assert report.clears
        await asyncio.wait_for(gw.state.idle.wait(), 2)
        await asyncio.wait_for(gw.state.reports._queue.join(), 10)
    finally:
        await gw_runner.cleanup()
        await echo.stop()
        await runner.cleanup()
    (filed,) = [orjson.loads(line) for f in tmp_path.glob("calls-*.jsonl") for line in f.read_bytes().splitlines()]
    assert posts == [filed]
    assert filed["call_sid"] == report.call_sid and filed["outcome"] == "completed"
    assert filed["from"] == "+•••••••0123"
    assert filed["barge_ins"] == 1 and filed["turns"] >= 2
    assert filed["truncations"] and filed["truncations"][0]["heard_ms"] > 0
    interrupted = [line for line in filed["transcript"] if line.get("interrupted")]
    assert interrupted and interrupted[0]["role"] == "assistant"
    assert any(line["role"] == "caller" for line in filed["transcript"])
    assert filed["turn_latency_ms"]["count"] >= 2 and filed["tokens"]["output_audio"] > 0


async def test_no_secret_reaches_a_log_line(secured):
    buffer = io.StringIO()
    configure_logging("debug", "json", stream=buffer)
    for secret in (API_KEY, TWILIO_TOKEN, ADMIN):
        register_secret(secret)
    try:
        caller = SimulatedCaller(secured.url, auth_token=TWILIO_TOKEN)
        report = await caller.run(BARGE_IN)
        await asyncio.wait_for(secured.state.idle.wait(), 2)
        # A forged signature and a replayed token get logged too.
        async with aiohttp.ClientSession() as http:
            async with http.post(secured.url + "/voice", data={"CallSid": "CA" + "0" * 32},
                                 headers={"X-Twilio-Signature": "forged"}) as resp:
                assert resp.status == 403
    finally:
        structlog.reset_defaults()
    logs = buffer.getvalue()
    lines = [orjson.loads(line) for line in logs.splitlines()]
    assert any(line["event"] == "call_summary" for line in lines)
    assert all(line.get("call_sid") for line in lines if line["event"] in ("call_started", "transcript",
                                                                           "barge_in", "call_summary"))
    for secret in (API_KEY, TWILIO_TOKEN, ADMIN, report.stream_parameters["token"]):
        assert secret not in logs
    assert report.stream_parameters["token"].split(".")[-1] not in logs
