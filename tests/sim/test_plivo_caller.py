"""The simulated Plivo caller on the wire, against a loopback fake that plays the gateway: the answer-URL
POST (form fields, V3 signature checked here with hmac), the `<Stream>` XML, start/media shapes, checkpoints
answered with playedStream once their audio has played, clearAudio answered with clearedAudio while the
pending checkpoints are dropped unanswered, and the hang-up as a socket close (no stop)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType, web

from gateway.sim import call_command
from gateway.sim.audio import speech_like
from gateway.sim.caller import CallReport, CallScript
from gateway.sim.plivo_caller import PlivoCaller

TOKEN = "plivo-sim-token"
TONE = base64.b64encode(b"\x10" * 800).decode()  # 100 ms of μ-law


class FakeGateway:
    def __init__(self, script: str = "") -> None:
        self.url = ""
        self.script = script
        self.webhook: dict[str, Any] = {}
        self.frames: list[dict[str, Any]] = []
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        self.closed_by_peer = asyncio.Event()

    async def voice(self, request: web.Request) -> web.Response:
        self.webhook = {"path": request.path, "headers": dict(request.headers), "form": dict(await request.post())}
        media = self.url.replace("http", "ws") + "/media/plivo"
        xml = ('<?xml version="1.0" encoding="UTF-8"?><Response><Stream bidirectional="true" audioTrack="inbound" '
               'keepCallAlive="true" contentType="audio/x-mulaw;rate=8000" '
               f'extraHeaders="token={b"v1.t".hex()},from={b"+1".hex()}">{media}</Stream></Response>')
        return web.Response(text=xml, content_type="application/xml")

    async def media(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sid = ""
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = orjson.loads(msg.data)
            self.frames.append(frame)
            self.arrivals.append(((loop.time() - t0) * 1000.0, frame))
            if frame["event"] == "start":
                sid = frame["start"]["streamId"]
                play = {"event": "playAudio", "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000,
                                                        "payload": TONE}}
                await ws.send_str(orjson.dumps(play).decode())
                await ws.send_str(orjson.dumps({"event": "checkpoint", "streamId": sid, "name": "a"}).decode())
                await ws.send_str(orjson.dumps(play).decode())
                await ws.send_str(orjson.dumps({"event": "checkpoint", "streamId": sid, "name": "b"}).decode())
                if self.script == "clear":
                    await asyncio.sleep(0.15)  # a has played (100 ms), b has not (200 ms)
                    await ws.send_str(orjson.dumps({"event": "clearAudio", "streamId": sid}).decode())
        self.closed_by_peer.set()
        return ws


async def serve(gw: FakeGateway) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/voice/plivo", gw.voice)
    app.router.add_get("/media/plivo", gw.media)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    gw.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return runner


@pytest.fixture
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeGateway]:
    gw = FakeGateway(getattr(request, "param", ""))
    runner = await serve(gw)
    yield gw
    await runner.cleanup()


SCRIPT = CallScript(utterances=[speech_like(100, seed=1)], answer_timeout_ms=400, lead_silence_ms=40,
                    hangup_after_idle_ms=100)


def test_ids_and_route():
    caller = PlivoCaller("http://gw")
    assert caller.webhook_path == "/voice/plivo" and caller.carrier == "plivo"
    assert str(uuid.UUID(caller.call_sid)) == caller.call_sid and str(uuid.UUID(caller.stream_sid))
    assert caller.account_sid.startswith("MA") and len(caller.account_sid) == 20


async def test_it_speaks_plivo_on_the_wire(fake: FakeGateway):
    caller = PlivoCaller(fake.url, auth_token=TOKEN)
    report = await caller.run(SCRIPT)
    await asyncio.wait_for(fake.closed_by_peer.wait(), 5)
    hook = fake.webhook
    form = hook["form"]
    assert hook["path"] == "/voice/plivo" and form["CallUUID"] == caller.call_sid
    assert form["From"] == "15005550006" and form["To"] == "15005550001" and form["Direction"] == "inbound"
    nonce = hook["headers"]["X-Plivo-Signature-V3-Nonce"]
    data = fake.url + "/voice/plivo?" + "".join(k + form[k] for k in sorted(form)) + "." + nonce
    expected = base64.b64encode(hmac.new(TOKEN.encode(), data.encode(), hashlib.sha256).digest()).decode()
    assert hook["headers"]["X-Plivo-Signature-V3"] == expected
    assert report.stream_parameters == {"token": "v1.t", "from": "+1"}
    assert report.errors == ["no agent answer to utterance 1 within 400 ms"]  # the fake plays before it speaks
    start, *rest = fake.frames
    assert start["event"] == "start" and start["sequenceNumber"] == 1
    assert start["start"] == {"callId": caller.call_sid, "streamId": caller.stream_sid,
                              "accountId": caller.account_sid, "tracks": ["inbound"],
                              "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}}
    assert start["extra_headers"] == f"token={b'v1.t'.hex()},from={b'+1'.hex()}"  # verbatim from the XML
    media = [f for f in rest if f["event"] == "media"]
    assert media and all(f["streamId"] == caller.stream_sid and f["media"]["track"] == "inbound" for f in media)
    assert [f["media"]["chunk"] for f in media] == list(range(1, len(media) + 1))
    stamps = [int(f["media"]["timestamp"]) for f in media]
    assert stamps == [stamps[0] + 20 * i for i in range(len(media))] and stamps[0] > 1_600_000_000_000
    assert all(len(base64.b64decode(f["media"]["payload"])) == 160 for f in media)
    seqs = [f["sequenceNumber"] for f in fake.frames]
    assert seqs == list(range(1, len(seqs) + 1))
    assert "stop" not in {f["event"] for f in fake.frames}  # the hang-up is the socket closing
    assert report.closed_by == "caller"
    # Both checkpoints answered with playedStream, each once its audio (100 ms, then 200 ms) had played.
    played = [(t, f["name"]) for t, f in fake.arrivals if f["event"] == "playedStream"]
    assert [name for _, name in played] == ["a", "b"]
    assert played[0][0] >= 95 and played[1][0] >= 195
    assert all(f["streamId"] == caller.stream_sid for _, f in fake.arrivals if f["event"] == "playedStream")
    assert isinstance(report, CallReport) and report.marks_echoed == ["a", "b"] and report.marks_flushed == []
    assert len(report.heard) == 1600


@pytest.mark.parametrize("fake", ["clear"], indirect=True)
async def test_clear_audio_is_answered_and_pending_checkpoints_are_dropped(fake: FakeGateway):
    caller = PlivoCaller(fake.url)
    report = await caller.run(SCRIPT)
    await asyncio.wait_for(fake.closed_by_peer.wait(), 5)
    events = [f["event"] for f in fake.frames]
    assert events.count("clearedAudio") == 1
    cleared = next(f for f in fake.frames if f["event"] == "clearedAudio")
    assert cleared["streamId"] == caller.stream_sid and isinstance(cleared["sequenceNumber"], int)
    assert [f["name"] for f in fake.frames if f["event"] == "playedStream"] == ["a"]  # b is never answered
    assert report.marks_echoed == ["a"] and report.marks_flushed == ["b"] and caller.checkpoints_dropped == ["b"]
    (clear,) = report.clears
    assert 140 <= clear["segment_played_ms"] <= 200 and clear["flushed_marks"] == 1
    assert 1100 <= len(report.heard) <= 1600  # the second 100 ms was cut


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    call_command.add_arguments(parser)
    return parser.parse_args(argv)


def test_the_carrier_option_offers_plivo():
    assert parse(["--carrier", "plivo"]).carrier == "plivo"
    assert call_command.SIGNING_SECRET["plivo"] == "PLIVO_AUTH_TOKEN"
    r = CallReport(webhook_status=403)
    assert call_command.refusal_hint(r, "http://gw", signed=False, carrier="plivo") == (
        "the webhook refused the call (HTTP 403): set --auth-token (or PLIVO_AUTH_TOKEN) to the gateway's "
        "PLIVO_AUTH_TOKEN")
    busy = CallReport(webhook_status=200, twiml="<Response><Speak>Busy.</Speak><Hangup/></Response>")
    assert "declined the call" in call_command.refusal_hint(busy, "http://gw", signed=False, carrier="plivo")
    empty = CallReport(webhook_status=200, twiml="<Response/>")
    assert "<Stream>" in call_command.refusal_hint(empty, "http://gw", signed=False, carrier="plivo")
