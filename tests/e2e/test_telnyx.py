"""Telnyx through the real app, in both dialects and both codecs: the simulated Telnyx caller (TeXML webhook
signed with Ed25519, `<Connect><Stream bidirectionalMode="rtp">`, connected/start/media/dtmf/stop, Telnyx's
media/mark/clear playback model) on /voice/telnyx and /media/telnyx; calls, barge-in, signatures, ids,
malformed frames, stream tokens and the fallback over the TeXML REST API, labelled telnyx."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript
from gateway.sim.telnyx_caller import TelnyxCaller, call_control_id, public_key_of, sign

from .conftest import Gateway, sample, start_gateway

KEY = Ed25519PrivateKey.generate()
PUBLIC_KEY = public_key_of(KEY)
API_KEY = "KEY01234567_telnyx_api_key_for_tests"
CARRIER = {"carrier": "telnyx"}
ALAW_SILENT_FRAME = base64.b64encode(b"\xd5" * 160).decode()  # what μ-law silence is in A-law
ULAW_SILENT_FRAME = base64.b64encode(b"\xff" * 160).decode()


def read_reports(directory: Path) -> list[bytes]:
    return [line for f in sorted(directory.glob("calls-*.jsonl")) for line in f.read_bytes().splitlines()]


def form(call_sid: str | None = None, account_sid: str | None = None) -> dict[str, str]:
    call = call_control_id() if call_sid is None else call_sid
    return {"AccountSid": str(uuid.uuid4()) if account_sid is None else account_sid, "CallSid": call,
            "CallSidLegacy": call, "From": "+13122010091", "To": "+13122010090", "ConnectionId": "1568109700606592442",
            "ApiVersion": "2010-04-01", "CallStatus": "ringing"}


def signed_headers(body: bytes, key: Ed25519PrivateKey = KEY, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    return {"Content-Type": "application/x-www-form-urlencoded", "telnyx-timestamp": timestamp,
            "telnyx-signature-ed25519": sign(key, timestamp, body)}


def session_format(session) -> str:
    """The input audio format the gateway configured on the echo line, in the session's dialect."""
    update = next(e for e in session.received if e.get("type") == "session.update")["session"]
    if session.dialect == "ga":
        return update["audio"]["input"]["format"]["type"]
    return update["input_audio_format"]


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
async def test_two_turn_call_carries_the_telnyx_label_and_passes_audio_through(echo, dialect: str, codec: str,
                                                                               tmp_path: Path):
    gateway, runner = await start_gateway(echo, dialect, CALL_REPORTS_DIR=str(tmp_path), TELNYX_CODEC=codec)
    labels = {**CARRIER, "provider": "custom", "outcome": "completed"}
    before = sample("gateway_calls_total", labels)
    try:
        caller = TelnyxCaller(gateway.url, codec=codec)
        assert caller.call_sid.startswith("v3:") and uuid.UUID(caller.account_sid)
        report = await caller.run(CallScript(utterances=[speech_like(600, seed=1), speech_like(600, seed=2)]))
        assert report.errors == []
        assert report.webhook_status == 200 and "<Connect><Stream " in report.twiml
        assert (caller.stream_url or "").endswith("/media/telnyx")
        assert report.stream_parameters["from"] == "+15005550006" and report.stream_parameters["token"]
        assert len(report.turn_latencies_ms) == 2, report.events
        assert report.media_ms_received >= 2 * 600 and len(report.heard) / 8 >= 2 * 600
        assert report.marks_echoed  # marks went round
        assert report.closed_by == "caller"  # the caller hung up: Telnyx's stop
        session = gateway.echo.sessions[0]
        assert session.dialect == dialect and session.errors_sent == []
        expected = {("ga", "PCMU"): "audio/pcmu", ("ga", "PCMA"): "audio/pcma",
                    ("beta", "PCMU"): "g711_ulaw", ("beta", "PCMA"): "g711_alaw"}[dialect, codec]
        assert session_format(session) == expected
        # Passthrough: what the caller sent is byte for byte what the upstream got, and the agent's audio
        # came back to the caller as the upstream sent it.
        appended = [e["audio"] for e in session.received if e.get("type") == "input_audio_buffer.append"]
        sent = caller.sent_payloads
        first = sent.index(appended[0])
        assert appended == sent[first : first + len(appended)] and all(len(p) == 216 for p in appended)
        assert (b"".join(base64.b64decode(a) for a in appended)
                == b"".join(base64.b64decode(s) for s in sent[first : first + len(appended)]))
        silent = ALAW_SILENT_FRAME if codec == "PCMA" else ULAW_SILENT_FRAME
        assert silent in appended and (ULAW_SILENT_FRAME if codec == "PCMA" else ALAW_SILENT_FRAME) not in sent
        deltas = [e["delta"] for e in session.sent if e["type"].endswith("audio.delta")]
        assert [m["media"]["payload"] for m in caller.received if m["event"] == "media"] == deltas
        assert {m["event"] for m in caller.received} <= {"media", "mark", "clear"}
        assert all(set(m) == {"event", "mark"} for m in caller.received if m["event"] == "mark")
        await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
        await asyncio.wait_for(gateway.state.reports._queue.join(), 5.0)
    finally:
        await runner.cleanup()
    assert sample("gateway_calls_total", labels) == before + 1
    (summary,) = [orjson.loads(line) for line in read_reports(tmp_path)]
    assert summary["carrier"] == "telnyx" and summary["call_sid"] == caller.call_sid
    assert summary["stream_sid"] == caller.stream_sid and summary["outcome"] == "completed"


async def test_a_clear_at_barge_in_returns_every_queued_mark(gateway: Gateway):
    """Telnyx's `clear` drops the queued media and sends the queued marks back (unlike Plivo's clearAudio):
    the gateway takes them and the truncation still says what the caller heard (the common barge-in scenario
    is in test_every_carrier)."""
    errors = {"invalid_mark": 0.0, "unknown_stream": 0.0}
    errors = {k: sample("gateway_carrier_protocol_errors_total", {**CARRIER, "kind": k}) for k in errors}
    caller = TelnyxCaller(gateway.url)
    script = CallScript(utterances=[speech_like(2000, seed=4), speech_like(500, seed=5)], barge_in_after_ms=700)
    report = await caller.run(script)
    assert report.errors == []
    assert len(report.clears) >= 1 and report.clears[0]["flushed_marks"] >= 1, report.events
    assert any(m == {"event": "clear"} for m in caller.received)
    sent_marks = [m["mark"]["name"] for m in caller.received if m["event"] == "mark"]
    assert report.marks_flushed and sorted(report.marks_echoed + report.marks_flushed) == sorted(sent_marks)
    session = gateway.echo.sessions[0]
    assert session.truncations and all(t["accepted"] for t in session.truncations)
    assert abs(session.truncations[0]["audio_end_ms"] - report.clears[0]["segment_played_ms"]) <= 20
    assert len(report.turn_latencies_ms) >= 1
    for kind, before in errors.items():  # the returned marks were taken as marks, not as violations
        assert sample("gateway_carrier_protocol_errors_total", {**CARRIER, "kind": kind}) == before


async def test_signed_webhook_is_accepted_and_forged_ones_refused(echo, dialect: str):
    gateway, runner = await start_gateway(echo, dialect, TELNYX_PUBLIC_KEY=PUBLIC_KEY)
    forbidden = sample("gateway_webhook_requests_total", {"result": "forbidden"})
    bad_request = sample("gateway_webhook_requests_total", {"result": "bad_request"})
    try:
        caller = TelnyxCaller(gateway.url, private_key=KEY)
        report = await caller.run(CallScript(utterances=[speech_like(400, seed=7)]))
        assert report.webhook_status == 200 and report.errors == []
        assert len(report.turn_latencies_ms) == 1

        url = gateway.url + "/voice/telnyx"
        body = urlencode(form()).encode()
        good = signed_headers(body)
        async with aiohttp.ClientSession() as http:
            for data, headers in (
                    (body, {"Content-Type": "application/x-www-form-urlencoded"}),  # unsigned
                    (body, signed_headers(body, Ed25519PrivateKey.generate())),  # another key
                    (body.replace(b"ringing", b"answered"), good),  # the body changed under the signature
                    (body, signed_headers(body, at=time.time() - 400)),  # stale: a replay
                    (body, {k: v for k, v in good.items() if k != "telnyx-timestamp"}),
                    (body, {k: v for k, v in good.items() if k != "telnyx-signature-ed25519"})):
                async with http.post(url, data=data, headers=headers) as resp:
                    assert resp.status == 403
            async with http.post(url, data=body, headers=good) as resp:
                assert resp.status == 200 and "<Connect><Stream " in await resp.text()
            # A GET carries the call in its unsigned query: refused while signatures are checked.
            async with http.get(url + "?" + body.decode(), headers=signed_headers(b"")) as resp:
                assert resp.status == 400 and "POST" in await resp.text()
        get_caller = TelnyxCaller(gateway.url, private_key=KEY, method="GET")
        assert (await get_caller.webhook())[0] == 400
        await get_caller.close()
    finally:
        await runner.cleanup()
    assert sample("gateway_webhook_requests_total", {"result": "forbidden"}) == forbidden + 6
    assert sample("gateway_webhook_requests_total", {"result": "bad_request"}) == bad_request + 2


async def test_an_unsigned_get_webhook_is_read_from_the_query(gateway: Gateway):
    caller = TelnyxCaller(gateway.url, method="GET")  # TeXML's default method; no public key configured
    report = await caller.run(CallScript(utterances=[speech_like(400, seed=9)]))
    assert report.webhook_status == 200 and report.errors == []
    assert len(report.turn_latencies_ms) == 1


async def test_telnyx_ids_are_required(gateway: Gateway):
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/voice/telnyx", data=form()) as resp:
            assert resp.status == 200 and resp.content_type == "text/xml"
            root = ET.fromstring(await resp.text())
        stream = root.find("./Connect/Stream")
        assert stream is not None and (stream.get("url") or "").endswith("/media/telnyx")
        assert stream.get("bidirectionalMode") == "rtp" and stream.get("bidirectionalCodec") == "PCMU"
        assert [p.get("name") for p in stream.findall("Parameter")] == ["token", "agent", "from", "to"]
        for bad, field_name in ((form(call_sid="fcc47bc6-e428-11ed-ad79-02420aef00b4"), "CallSid"),
                                (form(call_sid="CA" + "ab" * 16), "CallSid"), (form(call_sid=""), "CallSid"),
                                (form(account_sid="AC" + "ab" * 16), "AccountSid"),
                                (form(account_sid=""), "AccountSid")):
            async with http.post(gateway.url + "/voice/telnyx", data=bad) as resp:
                assert resp.status == 400 and field_name in await resp.text()
    assert gateway.echo.sessions == []


async def test_malformed_frames_are_counted_under_telnyx_and_ignored(gateway: Gateway):
    kinds = ["invalid_json", "unknown_event", "binary_frame", "unknown_stream", "invalid_media", "missing_event",
             "invalid_mark", "invalid_dtmf", "stream_error", "unexpected_track"]
    before = {k: sample("gateway_carrier_protocol_errors_total", {**CARRIER, "kind": k}) for k in kinds}
    twilio_before = {k: sample("gateway_carrier_protocol_errors_total", {"carrier": "twilio", "kind": k})
                     for k in kinds}
    caller = TelnyxCaller(gateway.url)
    await caller.connect()
    await caller.send_raw("{not json")
    await caller.send_raw('{"event":"dance"}')
    await caller.send_raw(b"\x00\x01binary")
    await caller.send_raw('{"event":"media","stream_id":"' + str(uuid.uuid4()) + '","media":{"payload":"//8="}}')
    await caller.send_raw('{"event":"media","media":{}}')
    await caller.send_raw('{"no_event":true}')
    await caller.send_raw('{"event":"mark","stream_id":"' + caller.stream_sid + '","mark":{}}')
    await caller.send_raw('{"event":"dtmf","dtmf":{"digit":""}}')
    await caller.send_raw('{"event":"error","payload":{"code":100003,"title":"malformed_frame"}}')
    await caller.send_raw('{"event":"media","media":{"track":"outbound","payload":"//8="}}')
    await caller.send_dtmf("5")  # a well-formed dtmf is no violation
    report = await caller.speak(CallScript(utterances=[speech_like(500, seed=8)]))
    assert report.errors == []
    assert len(report.turn_latencies_ms) == 1  # the call went on and was answered
    assert report.closed_by == "caller"
    for k in kinds:
        assert sample("gateway_carrier_protocol_errors_total", {**CARRIER, "kind": k}) == before[k] + 1, k
        assert sample("gateway_carrier_protocol_errors_total", {"carrier": "twilio", "kind": k}) == twilio_before[k]


async def raw_stream(gateway: Gateway, parameters: dict[str, str] | None, call_sid: str) -> tuple[int | None, str]:
    """Open /media/telnyx and send Telnyx's connected and start with the given custom parameters."""
    media = gateway.url.replace("http", "ws", 1) + "/media/telnyx"
    async with aiohttp.ClientSession() as http, http.ws_connect(media) as ws:
        await ws.send_str('{"event":"connected","version":"1.0.0"}')
        start: dict = {"event": "start", "sequence_number": "1", "stream_id": str(uuid.uuid4()).upper(), "start": {
            "user_id": str(uuid.uuid4()), "call_control_id": call_sid, "from": "+13122010091", "to": "+13122010090",
            "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}}}
        if parameters is not None:
            start["start"]["custom_parameters"] = parameters
        await ws.send_str(orjson.dumps(start).decode())
        msg = await asyncio.wait_for(ws.receive(), 5.0)
        return ws.close_code, str(msg.extra or "")


async def test_the_stream_token_is_checked_before_any_upstream_session(gateway: Gateway):
    rejected = sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"})
    missing = sample("gateway_stream_tokens_rejected_total", {"reason": "missing"})
    calls = {**CARRIER, "provider": "custom", "outcome": "rejected"}
    calls_before = sample("gateway_calls_total", calls)
    code, reason = await raw_stream(gateway, {"token": "v1.9999999999.nonce.forgedsignature"}, call_control_id())
    assert code == 1008 and "token" in reason
    assert sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"}) == rejected + 1
    code, _ = await raw_stream(gateway, None, call_control_id())
    assert code == 1008
    assert sample("gateway_stream_tokens_rejected_total", {"reason": "missing"}) == missing + 1
    # A real token, minted by the webhook for one call, does not open a stream for another.
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/voice/telnyx", data=form()) as resp:
            stream = ET.fromstring(await resp.text()).find("./Connect/Stream")
    assert stream is not None
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    code, _ = await raw_stream(gateway, params, call_control_id())
    assert code == 1008
    assert gateway.echo.sessions == []
    assert sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"}) == rejected + 2
    await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
    assert sample("gateway_calls_total", calls) == calls_before + 3


@dataclass
class FakeTelnyxRest:
    """The TeXML REST API's "Update call", as far as the gateway uses it."""

    url: str = ""
    requests: list[dict] = field(default_factory=list)

    async def update(self, request: web.Request) -> web.Response:
        self.requests.append({"account": request.match_info["account"], "call": request.match_info["call"],
                              "authorization": request.headers.get("Authorization"),
                              "form": dict(await request.post())})
        response = web.json_response({"sid": request.match_info["call"], "status": "in-progress"})
        response.force_close()
        return response


@pytest.fixture
async def telnyx_rest() -> AsyncIterator[FakeTelnyxRest]:
    fake = FakeTelnyxRest()
    app = web.Application()
    app.router.add_post("/v2/texml/Accounts/{account}/Calls/{call}", fake.update)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield fake
    await runner.cleanup()


async def test_an_unavailable_agent_falls_back_over_the_texml_api(echo, telnyx_rest: FakeTelnyxRest):
    """The Realtime service refuses the session (HTTP 401, not retried): the gateway replaces the call's
    TeXML with the apology, over the TeXML REST API, before it closes the stream."""

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=401, text="no")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    upstream = web.AppRunner(app, access_log=None)
    await upstream.setup()
    await web.TCPSite(upstream, "127.0.0.1", 0).start()
    realtime = f"ws://127.0.0.1:{upstream.addresses[0][1]}/v1/realtime"
    gateway, runner = await start_gateway(echo, "ga", REALTIME_URL=realtime, TELNYX_PUBLIC_KEY=PUBLIC_KEY,
                                          TELNYX_API_KEY=API_KEY, TELNYX_API_BASE_URL=telnyx_rest.url,
                                          UPSTREAM_CONNECT_TIMEOUT_S="1", UPSTREAM_CONNECT_RETRIES="0")
    try:
        caller = TelnyxCaller(gateway.url, private_key=KEY)
        await caller.connect()
        assert await caller.wait_closed(10) == 1000
        await caller.close()
    finally:
        await runner.cleanup()
        await upstream.cleanup()
    [req] = telnyx_rest.requests
    assert (req["account"], req["call"]) == (caller.account_sid, caller.call_sid)
    assert req["authorization"] == f"Bearer {API_KEY}" and list(req["form"]) == ["Texml"]
    apology = ET.fromstring(req["form"]["Texml"])
    assert [c.tag for c in apology] == ["Say", "Hangup"] and "not available" in (apology.findtext("Say") or "")
