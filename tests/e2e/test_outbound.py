"""Outbound calls end to end over loopback: the real app places calls through a fake of Twilio's REST API
(gateway.sim.twilio_api), which asserts nothing itself but records every request, sends signed status and
answering-machine callbacks, and answers the call with the simulated caller: as a human (the agent is heard),
as a machine (the AMD verdict reaches the live session, the voicemail mode is carried out), or not at all
(busy, no answer). DELETE and transfer on a live call, a ringing call cancelled, forged callbacks, and the
limits (MAX_CONCURRENT_CALLS, OUTBOUND_MAX_PER_MINUTE)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest
from twilio.request_validator import RequestValidator

from gateway.agents.profile import AgentBook, Profile, Voicemail
from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript
from gateway.sim.twilio_api import FakeTwilioApi

from ..resilience.conftest import eventually
from .conftest import AUTH_TOKEN, Gateway, sample, start_gateway

ADMIN = "admin-token-for-tests"
ACCOUNT = "AC" + "12" * 16
TO, FROM = "+14155550100", "+14155550199"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilioApi]:
    api = await FakeTwilioApi(auth_token=AUTH_TOKEN).start()
    yield api
    await api.stop()


async def outbound_gateway(echo, dialect: str, fake: FakeTwilioApi, tmp_path: Path, **env: str):
    return await start_gateway(echo, dialect, ADMIN_TOKEN=ADMIN, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                               TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_API_BASE_URL=fake.url,
                               CALL_REPORTS_DIR=str(tmp_path / "reports"), **env)


async def api(gw: Gateway, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as http, http.request(
            method, gw.url + path, json=body, headers={"Authorization": f"Bearer {ADMIN}"}) as resp:
        return resp.status, orjson.loads(await resp.read()), resp.headers


async def summaries(gw: Gateway, tmp_path: Path) -> list[dict[str, Any]]:
    await asyncio.wait_for(gw.state.idle.wait(), 10.0)
    await asyncio.wait_for(gw.state.reports._queue.join(), 5.0)
    return [orjson.loads(line) for f in sorted((tmp_path / "reports").glob("calls-*.jsonl"))
            for line in f.read_bytes().splitlines()]


async def test_a_placed_call_answered_by_a_human_hears_the_agent(dialect: str, echo, fake, tmp_path: Path):
    gw, runner = await outbound_gateway(echo, dialect, fake, tmp_path)
    before = sample("gateway_outbound_calls_total", {"result": "completed"})
    try:
        status, answer, headers = await api(gw, "POST", "/calls", {"to": TO, "from": FROM,
                                                                   "metadata": {"crm_id": 42}})
        assert status == 201, answer
        sid, oid = answer["id"], answer["outbound_id"]
        assert headers["Location"] == f"/calls/{sid}" and answer["status"] == "queued"
        call = fake.calls[sid]
        await asyncio.wait_for(call.done.wait(), 15)
        _, record, _ = await api(gw, "GET", f"/calls/{sid}")
        rows = await summaries(gw, tmp_path)
    finally:
        await runner.cleanup()
    # What Twilio was asked: the TwiML that connects the stream with the token, the callbacks, no AMD.
    (created,) = fake.created
    form = created["form"]
    assert created["account"] == ACCOUNT and created["user"] == ACCOUNT and created["password"] == AUTH_TOKEN
    assert (form["To"], form["From"], form["Timeout"]) == (TO, FROM, "30")
    port = urlsplit(gw.url).port
    assert f'<Stream url="ws://127.0.0.1:{port}/media/twilio">' in form["Twiml"]
    assert '<Parameter name="token" value="v1.' in form["Twiml"] and f'value="{oid}"' in form["Twiml"]
    assert form["StatusCallback"] == f"{gw.url}/status/twilio?call={oid}" and form["StatusCallbackMethod"] == "POST"
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert "MachineDetection" not in form and "AsyncAmd" not in form
    # The callee heard the agent (the echo line's answer), and every callback was accepted.
    report = call.report
    assert report is not None and report.errors == [] and len(report.heard) > 0 and report.closed_by == "caller"
    assert report.stream_parameters["outbound"] == oid and report.stream_parameters["agent"] == "default"
    assert [c["http_status"] for c in call.callbacks] == [204, 204, 204, 204]
    assert record["status"] == "completed" and record["result"] == "completed" and record["duration_s"] >= 1
    assert [h["status"] for h in record["history"]] == ["initiated", "ringing", "in-progress", "completed"]
    assert record["metadata"] == {"crm_id": 42} and record["streamed"] and record["stream_outcome"] == "completed"
    (row,) = rows
    assert row["call_sid"] == sid and row["outcome"] == "completed" and row["turns"] >= 1
    assert row["outbound"]["outbound_id"] == oid and row["outbound"]["metadata"] == {"crm_id": 42}
    assert sample("gateway_outbound_calls_total", {"result": "completed"}) == before + 1
    assert gw.state.reservations == {}


@pytest.mark.parametrize("mode", ["hangup", "say", "speak"])
async def test_a_machine_answer_reaches_the_live_session_and_gets_the_voicemail(echo, fake, tmp_path: Path,
                                                                                 mode: str):
    fake.answer = "machine"
    gw, runner = await outbound_gateway(echo, "ga", fake, tmp_path)
    agent = gw.state.settings.agent
    message = "Hello, this is Ada from the clinic. Please call us back." if mode != "hangup" else None
    gw.state.agents = AgentBook({"default": Profile("default", agent, voicemail=Voicemail(mode, message))}, "default")
    before = sample("gateway_outbound_calls_total", {"result": "machine"})
    try:
        status, answer, _ = await api(gw, "POST", "/calls", {"to": TO, "from": FROM, "machine_detection": True})
        assert status == 201, answer
        call = fake.calls[answer["id"]]
        await asyncio.wait_for(call.done.wait(), 15)
        _, record, _ = await api(gw, "GET", f"/calls/{answer['outbound_id']}")
        (row,) = await summaries(gw, tmp_path)
    finally:
        await runner.cleanup()
    form = fake.created[0]["form"]
    assert (form["MachineDetection"], form["AsyncAmd"]) == ("DetectMessageEnd", "true")
    assert form["AsyncAmdStatusCallback"] == f"{gw.url}/status/twilio/amd?call={answer['outbound_id']}"
    assert '<Parameter name="amd" value="1"' in form["Twiml"]
    amd = [c for c in call.callbacks if c["kind"] == "amd"]
    assert [(c["fields"]["AnsweredBy"], c["http_status"]) for c in amd] == [("machine_end_beep", 204)]
    (update,) = fake.requests  # the voicemail mode, carried out through the REST API after the beep
    if mode == "say":
        assert f"<Say>{message}</Say><Hangup />" in update["twiml"]
    else:  # hangup at once; speak: the model's message first, then the hang-up once it was heard
        assert "<Hangup" in update["twiml"] and "<Say" not in update["twiml"]
    asked = [e["response"] for e in echo.sessions[0].received if e["type"] == "response.create"]
    if mode == "speak":
        assert [r.get("metadata") for r in asked] == [{"purpose": "voicemail"}] and message in asked[0]["instructions"]
        assert call.report.media_ms_received > 0  # the machine recorded the agent's message
    else:
        assert asked == []  # the agent never spoke to the machine
    assert call.ended_by == "update" and call.report is not None and call.report.utterance_ends_ms
    assert record["answered_by"] == "machine" and record["answered_by_detail"] == "machine_end_beep"
    assert record["result"] == "machine"
    assert row["outcome"] == "voicemail" and row["outbound"]["answered_by"] == "machine"
    assert sample("gateway_outbound_calls_total", {"result": "machine"}) == before + 1


async def test_a_verdict_that_comes_before_the_stream_is_given_to_it_at_its_start(echo, fake, tmp_path: Path):
    fake.verdict_first = True  # the AMD callback reaches the gateway before the media stream opens
    gw, runner = await outbound_gateway(echo, "ga", fake, tmp_path)
    agent = dataclasses.replace(gw.state.settings.agent, greeting="Hi, this is Ada from the clinic.")
    gw.state.agents = AgentBook({"default": Profile("default", agent)}, "default")
    try:
        status, answer, _ = await api(gw, "POST", "/calls", {"to": TO, "from": FROM, "machine_detection": True})
        assert status == 201, answer
        call = fake.calls[answer["id"]]
        await asyncio.wait_for(call.done.wait(), 15)
        (row,) = await summaries(gw, tmp_path)
    finally:
        await runner.cleanup()
    amd = [c for c in call.callbacks if c["kind"] == "amd"]
    assert [c["fields"]["AnsweredBy"] for c in amd] == ["human"]
    # The held greeting went as soon as the stream started (not after the 30 s bound), and the person heard it.
    greets = [e["response"] for e in echo.sessions[0].received if e["type"] == "response.create"]
    assert greets and greets[0]["metadata"] == {"purpose": "greeting"}
    assert row["answered_by"] == "human" and row["outcome"] == "completed"
    assert call.report is not None and call.report.errors == [] and call.report.media_ms_received > 0


@pytest.mark.parametrize("answer", ["busy", "no-answer"])
async def test_a_call_not_answered_is_recorded_counted_and_summarised(echo, fake, tmp_path: Path, answer: str):
    fake.answer = answer
    result = answer.replace("-", "_")
    gw, runner = await outbound_gateway(echo, "ga", fake, tmp_path, CALL_REPORT_MASK_NUMBERS="true")
    before = sample("gateway_outbound_calls_total", {"result": result})
    try:
        status, placed, _ = await api(gw, "POST", "/calls", {"to": TO, "from": FROM, "metadata": {"batch": "b1"}})
        assert status == 201
        await asyncio.wait_for(fake.calls[placed["id"]].done.wait(), 10)
        _, record, _ = await api(gw, "GET", f"/calls/{placed['id']}")
        (row,) = await summaries(gw, tmp_path)
    finally:
        await runner.cleanup()
    assert record["status"] == answer and record["result"] == result and not record["streamed"]
    assert record["live"] is None and record["duration_s"] == 0
    assert row["outcome"] == result and row["call_sid"] == placed["id"] and row["stream_sid"] is None
    assert row["agent"] == "default"
    assert row["outbound"]["metadata"] == {"batch": "b1"} and row["outbound"]["to"].endswith("0100")
    assert TO not in orjson.dumps(row).decode()  # masked
    assert sample("gateway_outbound_calls_total", {"result": result}) == before + 1
    assert gw.state.reservations == {}  # the place held for its stream is free again


async def test_status_callbacks_must_be_signed(echo, fake, tmp_path: Path):
    fake.dial = False
    gw, runner = await outbound_gateway(echo, "ga", fake, tmp_path)
    forbidden = sample("gateway_status_callbacks_total", {"result": "forbidden"})
    try:
        _, placed, _ = await api(gw, "POST", "/calls", {"to": TO, "from": FROM})
        url = f"{gw.url}/status/twilio?call={placed['outbound_id']}"
        fields = {"CallSid": placed["id"], "AccountSid": ACCOUNT, "CallStatus": "completed", "CallDuration": "9"}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=fields, headers={"X-Twilio-Signature": "forged"}) as resp:
                assert resp.status == 403
            async with http.post(url, data=fields) as resp:  # unsigned
                assert resp.status == 403
            assert gw.state.outbound.get(placed["id"]).status == "queued"  # nothing recorded
            signature = RequestValidator(AUTH_TOKEN).compute_signature(url, fields)
            async with http.post(url, data=fields, headers={"X-Twilio-Signature": signature}) as resp:
                assert resp.status == 204
        assert gw.state.outbound.get(placed["id"]).result == "completed"
    finally:
        await runner.cleanup()
    assert sample("gateway_status_callbacks_total", {"result": "forbidden"}) == forbidden + 2


def long_human() -> CallScript:
    return CallScript(utterances=[speech_like(500, seed=3)], hangup_after_idle_ms=20_000, max_call_ms=30_000)


async def live_call(gw: Gateway, fake: FakeTwilioApi) -> tuple[dict[str, Any], Any]:
    status, placed, _ = await api(gw, "POST", "/calls", {"to": TO, "from": FROM})
    assert status == 201, placed
    record = gw.state.outbound.get(placed["id"])
    await eventually(lambda: record.live and record.session.call.session_ready, 10, "the stream and the agent")
    return placed, fake.calls[placed["id"]]


async def test_delete_hangs_up_a_live_call(echo, fake, tmp_path: Path):
    fake.human = long_human()
    gw, runner = await outbound_gateway(echo, "ga", fake, tmp_path)
    try:
        placed, call = await live_call(gw, fake)
        status, answer, _ = await api(gw, "DELETE", f"/calls/{placed['id']}")
        assert (status, answer) == (200, {"id": placed["id"], "status": "hung_up"})
        await asyncio.wait_for(call.done.wait(), 10)
        (row,) = await summaries(gw, tmp_path)
    finally:
        await runner.cleanup()
    (update,) = fake.requests
    assert update["call"] == placed["id"] and "<Hangup" in update["twiml"]
    assert call.caller is not None and call.caller.closed.is_set()
    assert row["outcome"] == "hung_up_by_api" and row["outbound"]["ended_by"] == "api"


async def test_transfer_moves_a_live_call_and_is_bound_by_the_allow_list(echo, fake, tmp_path: Path):
    fake.human = long_human()
    gw, runner = await outbound_gateway(echo, "ga", fake, tmp_path, OUTBOUND_ALLOWED_PREFIXES="+1")
    try:
        placed, call = await live_call(gw, fake)
        status, answer, _ = await api(gw, "POST", f"/calls/{placed['id']}/transfer", {"to": "+447700900123"})
        assert status == 403 and "OUTBOUND_ALLOWED_PREFIXES" in answer["error"]
        assert fake.requests == []
        status, answer, _ = await api(gw, "POST", f"/calls/{placed['id']}/transfer", {"to": "+14155550111"})
        assert (status, answer) == (200, {"id": placed["id"], "status": "transferred"})
        await asyncio.wait_for(call.done.wait(), 10)
        (row,) = await summaries(gw, tmp_path)
    finally:
        await runner.cleanup()
    (update,) = fake.requests
    assert "<Dial><Number>+14155550111</Number></Dial>" in update["twiml"]
    assert row["outcome"] == "transferred" and row["reason"] == "transferred through the call API"


async def test_delete_cancels_a_ringing_call(echo, fake, tmp_path: Path):
    fake.ring_ms = 3000.0
    gw, runner = await outbound_gateway(echo, "ga", fake, tmp_path)
    try:
        _, placed, _ = await api(gw, "POST", "/calls", {"to": TO, "from": FROM})
        status, answer, _ = await api(gw, "DELETE", f"/calls/{placed['id']}")
        assert status == 202 and answer["status"] == "ending"
        await asyncio.wait_for(fake.calls[placed["id"]].done.wait(), 10)
        record = gw.state.outbound.get(placed["id"])
        assert record.result == "canceled" and record.ended_by == "api"
    finally:
        await runner.cleanup()
    assert [u.get("status") for u in fake.requests] == ["canceled"]


async def test_outbound_calls_count_toward_max_concurrent_calls(echo, fake, tmp_path: Path):
    fake.dial = False  # the first call rings on: its place stays held
    gw, runner = await outbound_gateway(echo, "ga", fake, tmp_path, MAX_CONCURRENT_CALLS="1")
    try:
        assert (await api(gw, "POST", "/calls", {"to": TO, "from": FROM}))[0] == 201
        status, answer, _ = await api(gw, "POST", "/calls", {"to": TO, "from": FROM})
    finally:
        await runner.cleanup()
    assert status == 503 and "MAX_CONCURRENT_CALLS" in answer["error"]
    assert len(fake.created) == 1


async def test_the_rate_limit_answers_429_with_retry_after(echo, fake, tmp_path: Path):
    fake.dial = False
    gw, runner = await outbound_gateway(echo, "ga", fake, tmp_path, OUTBOUND_MAX_PER_MINUTE="2")
    limited = sample("gateway_outbound_requests_total", {"result": "rate_limited"})
    try:
        for _ in range(2):
            assert (await api(gw, "POST", "/calls", {"to": TO, "from": FROM}))[0] == 201
        status, answer, headers = await api(gw, "POST", "/calls", {"to": TO, "from": FROM})
    finally:
        await runner.cleanup()
    assert status == 429 and "OUTBOUND_MAX_PER_MINUTE" in answer["error"]
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert len(fake.created) == 2
    assert sample("gateway_outbound_requests_total", {"result": "rate_limited"}) == limited + 1
