"""Vonage through the real app, in both dialects and at both stream rates: the simulated Vonage caller (answer
webhook GET, NCCO connect to a websocket, websocket:connected with the headers flattened, binary 20 ms L16
frames, notify/clear, the socket closed to hang up) on /voice/vonage and /media/vonage, the Realtime session in
24 kHz PCM; calls, barge-in and its truncation error, signed-webhook JWTs, ids, malformed frames and stream
tokens, labelled vonage."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jwt
import numpy as np
import orjson
import pytest

from gateway.carriers.vonage.convert import Resampler
from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript
from gateway.sim.echo import EchoLine
from gateway.sim.vonage_caller import VonageCaller, signed_webhook_jwt

from .conftest import Gateway, sample, start_gateway

SECRET = "vonage-signature-secret-for-tests"
CARRIER = {"carrier": "vonage"}
# The truncation on barge-in against what the caller heard (ms): the notify of a mark over a held partial frame
# is deferred to the frame that completes it, so the gateway may credit the caller with up to one 20 ms frame
# less than they heard, never more; 10 ms more for the loop's scheduling on a loaded machine.
TRUNCATION_ERROR_MS = (-30.0, 5.0)


def read_reports(directory: Path) -> list[bytes]:
    return [line for f in sorted(directory.glob("calls-*.jsonl")) for line in f.read_bytes().splitlines()]


def query(call_uuid: str) -> dict[str, str]:
    return {"to": "447700900000", "from": "447700900001", "uuid": call_uuid,
            "conversation_uuid": "CON-" + str(uuid.uuid4())}


def pcm(payloads: list[str]) -> np.ndarray:
    import base64

    return np.frombuffer(b"".join(base64.b64decode(p) for p in payloads), "<i2")


def rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) + 1e-9)


@pytest.mark.parametrize("rate", [16000, 8000])
async def test_two_turn_call_carries_the_vonage_label(echo, dialect: str, rate: int, tmp_path: Path):
    gateway, runner = await start_gateway(echo, dialect, CALL_REPORTS_DIR=str(tmp_path),
                                          VONAGE_SAMPLE_RATE=str(rate))
    labels = {**CARRIER, "provider": "custom", "outcome": "completed"}
    before = sample("gateway_calls_total", labels)
    try:
        caller = VonageCaller(gateway.url)
        report = await caller.run(CallScript(utterances=[speech_like(600, seed=1), speech_like(600, seed=2)]))
        assert report.errors == [] and report.frames_rejected == 0
        assert report.webhook_status == 200 and report.sample_rate == rate
        assert (caller.stream_url or "").endswith("/media/vonage")
        assert report.stream_parameters["from"] == "15005550006" and report.stream_parameters["token"]
        assert report.stream_parameters["call_uuid"] == caller.call_sid
        assert len(report.turn_latencies_ms) == 2, report.events
        assert report.media_ms_received >= 2 * 600 and len(report.heard) / 8 >= 2 * 600
        assert report.marks_echoed  # notifies went round
        assert report.closed_by == "caller"  # the caller closed the socket: Vonage sends no stop
        assert {m["action"] for m in caller.received} <= {"notify", "clear"}
        session = gateway.echo.sessions[0]
        assert session.dialect == dialect and session.errors_sent == []
        # The caller's L16 reached the session as 24 kHz PCM, 20 ms an append, in order, nothing lost.
        appended = [e["audio"] for e in session.received if e.get("type") == "input_audio_buffer.append"]
        assert appended and {len(p) for p in appended} == {1280}  # 960 bytes = 480 samples = 20 ms at 24 kHz
        sent = b"".join(caller.sent_frames[: len(appended)])
        assert pcm(appended).tobytes() == Resampler(rate, 24000).convert(sent)
        assert abs(rms_db(pcm(appended)) - rms_db(np.frombuffer(sent, "<i2"))) < 1.0
        # The answers' 24 kHz audio reached the caller in whole 20 ms frames at its rate: all of it, each answer
        # padded to its last frame at most.
        deltas = [e["delta"] for e in session.sent if e["type"].endswith("audio.delta")]
        answer_ms = len(pcm(deltas)) / 24.0
        assert answer_ms <= report.media_ms_received <= answer_ms + 20 * 2
        assert all(len(f) == rate // 25 for f in caller.received_frames)
        heard = np.frombuffer(b"".join(caller.received_frames), "<i2")
        assert abs(rms_db(heard) - rms_db(pcm(deltas))) < 1.0
        await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
        await asyncio.wait_for(gateway.state.reports._queue.join(), 5.0)
    finally:
        await runner.cleanup()
    assert sample("gateway_calls_total", labels) == before + 1
    (summary,) = [orjson.loads(line) for line in read_reports(tmp_path)]
    assert summary["carrier"] == "vonage" and summary["call_sid"] == caller.call_sid
    assert summary["outcome"] == "completed" and summary["carrier_errors"] == 0


@pytest.fixture(params=[100, 50], ids=["deltas-100ms", "deltas-50ms"])
async def chunked_echo(request: pytest.FixtureRequest) -> AsyncIterator[EchoLine]:
    """The echo line answering in 100 ms deltas (whole frames at both rates) or 50 ms ones (2.5 frames: a
    partial frame held after every delta, and the marks over it deferred)."""
    line = EchoLine(pace=2.0, delta_ms=request.param)
    await line.start()
    yield line
    await line.stop()


async def test_barge_in_truncates_at_what_the_caller_heard(chunked_echo: EchoLine, dialect: str):
    gateway, runner = await start_gateway(chunked_echo, dialect)
    try:
        caller = VonageCaller(gateway.url)
        script = CallScript(utterances=[speech_like(2000, seed=4), speech_like(500, seed=5)],
                            barge_in_after_ms=700)
        report = await caller.run(script)
    finally:
        await runner.cleanup()
    assert report.errors == [] and report.frames_rejected == 0
    assert len(report.clears) >= 1, report.events
    assert any(m["action"] == "clear" for m in caller.received)
    played = report.clears[0]["segment_played_ms"]
    session = chunked_echo.sessions[0]
    assert session.truncations, session.received
    first = session.truncations[0]
    assert first["accepted"], first
    low, high = TRUNCATION_ERROR_MS
    assert low <= first["audio_end_ms"] - played <= high, (first, played)
    assert all(t["accepted"] for t in session.truncations)
    assert len(report.turn_latencies_ms) >= 1


@pytest.fixture
async def signed_vonage(echo: EchoLine, dialect: str) -> AsyncIterator[Gateway]:
    gateway, runner = await start_gateway(echo, dialect, VONAGE_SIGNATURE_SECRET=SECRET)
    yield gateway
    await runner.cleanup()


async def test_signed_webhooks_are_accepted_and_forged_ones_refused(signed_vonage: Gateway):
    gateway = signed_vonage
    forbidden = sample("gateway_webhook_requests_total", {"result": "forbidden"})
    caller = VonageCaller(gateway.url, auth_token=SECRET)
    report = await caller.run(CallScript(utterances=[speech_like(400, seed=7)]))
    assert report.webhook_status == 200 and report.errors == []
    assert len(report.turn_latencies_ms) == 1

    url = gateway.url + "/voice/vonage"
    q = query(str(uuid.uuid4()))
    payload = orjson.dumps(q)
    now = time.time()
    forged = [
        {},  # unsigned
        {"Authorization": "Bearer " + signed_webhook_jwt("another-secret-of-32-characters!", payload)},
        {"Authorization": "Bearer " + signed_webhook_jwt(SECRET, orjson.dumps(query(str(uuid.uuid4()))))},  # other
        {"Authorization": "Bearer " + signed_webhook_jwt(SECRET, payload, iat=now - 3600)},  # stale
        {"Authorization": "Bearer " + jwt.encode({"iat": int(now), "payload_hash": hashlib.sha256(payload).hexdigest()},
                                                 None, algorithm="none")},  # unsigned JWT
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ]
    async with aiohttp.ClientSession() as http:
        for headers in forged:
            async with http.get(url, params=q, headers=headers) as resp:
                assert resp.status == 403
        signed = {"Authorization": "Bearer " + signed_webhook_jwt(SECRET, payload)}
        async with http.get(url, params=q, headers=signed) as resp:
            assert resp.status == 200 and resp.content_type == "application/json"
            (action,) = orjson.loads(await resp.text())
            assert action["endpoint"][0]["headers"]["call_uuid"] == q["uuid"]
        # The same token on another call's query, or with the query reordered, does not pass.
        async with http.get(url, params=dict(reversed(list(q.items()))), headers=signed) as resp:
            assert resp.status == 403
        # A POST (answer_method POST): the JSON body is what is hashed.
        body = orjson.dumps(query(str(uuid.uuid4())))
        for token, status in ((signed_webhook_jwt(SECRET, body), 200), (signed_webhook_jwt(SECRET, payload), 403)):
            async with http.post(url, data=body, headers={"Authorization": "Bearer " + token,
                                                          "Content-Type": "application/json"}) as resp:
                assert resp.status == status
    assert sample("gateway_webhook_requests_total", {"result": "forbidden"}) == forbidden + len(forged) + 2


async def test_a_signed_post_answer_webhook_places_a_call(signed_vonage: Gateway):
    caller = VonageCaller(signed_vonage.url, auth_token=SECRET, method="POST")
    report = await caller.run(CallScript(utterances=[speech_like(400, seed=3)]))
    assert report.webhook_status == 200 and report.errors == [] and len(report.turn_latencies_ms) == 1


async def test_a_call_uuid_is_required(gateway: Gateway):
    async with aiohttp.ClientSession() as http:
        for bad in ("CA" + "ab" * 16, "", "not-a-uuid"):
            async with http.get(gateway.url + "/voice/vonage", params=query(bad)) as resp:
                assert resp.status == 400 and "uuid" in await resp.text()
        async with http.get(gateway.url + "/voice/vonage", params={"from": "1", "to": "2"}) as resp:
            assert resp.status == 400
    assert gateway.echo.sessions == []


async def test_malformed_frames_are_counted_under_vonage_and_ignored(gateway: Gateway):
    kinds = ["invalid_json", "unknown_event", "frame_size", "missing_event", "invalid_mark", "invalid_dtmf",
             "duplicate_start"]
    before = {k: sample("gateway_carrier_protocol_errors_total", {**CARRIER, "kind": k}) for k in kinds}
    twilio_before = {k: sample("gateway_carrier_protocol_errors_total", {"carrier": "twilio", "kind": k})
                     for k in kinds}
    caller = VonageCaller(gateway.url)
    await caller.connect()
    await caller.send_raw("{not json")
    await caller.send_raw('{"event":"websocket:dance"}')
    await caller.send_raw(b"\x00\x01" * 50)  # 5 ms, not 20
    await caller.send_raw('{"no_event":true}')
    await caller.send_raw('{"event":"websocket:notify","payload":{}}')
    await caller.send_raw('{"event":"websocket:dtmf"}')
    await caller.send_raw(orjson.dumps({"event": "websocket:connected", "content-type": "audio/l16;rate=16000",
                                        "call_uuid": caller.call_sid}).decode())
    await caller.send_raw('{"event":"websocket:dtmf","digit":"5","duration":260}')  # a good one, for contrast
    report = await caller.speak(CallScript(utterances=[speech_like(500, seed=8)]))
    assert len(report.turn_latencies_ms) == 1  # the call went on and was answered
    assert report.closed_by == "caller"
    for k in kinds:
        assert sample("gateway_carrier_protocol_errors_total", {**CARRIER, "kind": k}) == before[k] + 1, k
        assert sample("gateway_carrier_protocol_errors_total", {"carrier": "twilio", "kind": k}) == twilio_before[k]


async def raw_stream(gateway: Gateway, headers: dict[str, str]) -> tuple[int | None, str]:
    """Open /media/vonage and send websocket:connected with these headers flattened in."""
    media = gateway.url.replace("http", "ws", 1) + "/media/vonage"
    async with aiohttp.ClientSession() as http, http.ws_connect(media) as ws:
        await ws.send_str(orjson.dumps({"event": "websocket:connected", "content-type": "audio/l16;rate=16000",
                                        **headers}).decode())
        await ws.send_bytes(b"\0" * 640)
        msg = await asyncio.wait_for(ws.receive(), 5.0)
        return ws.close_code, str(msg.extra or "")


async def test_the_stream_token_is_checked_before_any_upstream_session(gateway: Gateway):
    rejected = sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"})
    calls = {**CARRIER, "provider": "custom", "outcome": "rejected"}
    calls_before = sample("gateway_calls_total", calls)
    code, reason = await raw_stream(gateway, {"call_uuid": str(uuid.uuid4()),
                                              "token": "v1.9999999999.nonce.forgedsignature"})
    assert code == 1008 and "token" in reason
    assert sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"}) == rejected + 1
    code, _ = await raw_stream(gateway, {"call_uuid": str(uuid.uuid4())})  # no token
    assert code == 1008
    # A real token, minted by the webhook for one call, does not open a stream for another.
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/voice/vonage", params=query(str(uuid.uuid4()))) as resp:
            (action,) = orjson.loads(await resp.text())
    headers = action["endpoint"][0]["headers"]
    code, _ = await raw_stream(gateway, {**headers, "call_uuid": str(uuid.uuid4())})
    assert code == 1008
    # A forged token in an otherwise genuine call, from the simulated caller itself.
    caller = VonageCaller(gateway.url)
    caller.forge_token("v1.9999999999.nonce.forgedsignature")
    await caller.connect()
    assert await caller.wait_closed(5.0) == 1008
    await caller.close()
    assert gateway.echo.sessions == []
    assert sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"}) == rejected + 3
    await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
    assert sample("gateway_calls_total", calls) == calls_before + 4
