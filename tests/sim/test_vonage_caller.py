"""The simulated Vonage caller on the wire, against a loopback fake that plays the gateway: the signed answer
webhook (GET query or POST JSON; the JWT checked here with PyJWT), the NCCO, websocket:connected with the
headers flattened, binary 20 ms L16 frames at the NCCO's rate, notifies answered once their audio has played,
a clear answered with websocket:cleared while pending notifies are dropped, frames that are not 20 ms rejected
and counted, and the hang-up as a socket close (no stop)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import numpy as np
import orjson
import pytest
from aiohttp import WSMsgType, web

from gateway.sim.audio import speech_like, tone
from gateway.sim.caller import CallScript
from gateway.sim.vonage_caller import VonageCaller

SECRET = "vonage-sim-signature-secret-32by"


def tone_frames(rate: int, n: int) -> list[bytes]:
    size = rate // 50
    t = np.arange(size * n) / rate
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    return [pcm[i * size * 2 : (i + 1) * size * 2] for i in range(n)]


class FakeGateway:
    def __init__(self, script: str = "", rate: int = 16000) -> None:
        self.url, self.script, self.rate = "", script, rate
        self.webhook: dict[str, Any] = {}
        self.text: list[tuple[float, dict[str, Any]]] = []
        self.binary: list[bytes] = []
        self.closed_by_peer = asyncio.Event()

    async def voice(self, request: web.Request) -> web.Response:
        self.webhook = {"method": request.method, "path": request.path, "headers": dict(request.headers),
                        "query": list(request.query.items()), "body": await request.read()}
        media = self.url.replace("http", "ws") + "/media/vonage"
        ncco = [{"action": "connect", "endpoint": [{"type": "websocket", "uri": media,
                                                    "content-type": f"audio/l16;rate={self.rate}",
                                                    "headers": {"call_uuid": request.query.get("uuid", "?"),
                                                                "token": "v1.t", "from": "15005550006"}}]}]
        return web.json_response(ncco)

    async def media(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                self.binary.append(msg.data)
                continue
            frame = orjson.loads(msg.data)
            self.text.append(((loop.time() - t0) * 1000.0, frame))
            if frame.get("event") != "websocket:connected":
                continue
            frames = tone_frames(self.rate, 5)  # 100 ms
            for data in frames:
                await ws.send_bytes(data)
            await ws.send_str('{"action":"notify","payload":{"name":"a","n":1}}')
            for data in frames:
                await ws.send_bytes(data)
            await ws.send_str('{"action":"notify","payload":{"name":"b"}}')
            if self.script == "clear":
                await asyncio.sleep(0.15)  # a has played (100 ms), b has not (200 ms)
                await ws.send_str('{"action":"clear"}')
            if self.script == "bad-frames":
                await ws.send_bytes(b"\0" * 100)
                await ws.send_bytes(frames[0] + b"\0\0")
        self.closed_by_peer.set()
        return ws


@pytest.fixture
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeGateway]:
    script, rate = getattr(request, "param", ("", 16000))
    gw = FakeGateway(script, rate)
    app = web.Application()
    app.router.add_route("*", "/voice/vonage", gw.voice)
    app.router.add_get("/media/vonage", gw.media)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    gw.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield gw
    await runner.cleanup()


SCRIPT = CallScript(utterances=[speech_like(100, seed=1)], answer_timeout_ms=400, lead_silence_ms=40,
                    hangup_after_idle_ms=100)


def test_ids_and_route():
    caller = VonageCaller("http://gw")
    assert caller.webhook_path == "/voice/vonage" and caller.carrier == "vonage"
    assert str(uuid.UUID(caller.call_sid)) == caller.call_sid and caller.stream_sid == caller.call_sid
    assert caller.conversation_uuid.startswith("CON-") and uuid.UUID(caller.conversation_uuid[4:])
    with pytest.raises(ValueError):
        VonageCaller("http://gw", method="PUT")


@pytest.mark.parametrize("fake", [("", 16000), ("", 8000)], indirect=True)
async def test_it_speaks_vonage_on_the_wire(fake: FakeGateway):
    caller = VonageCaller(fake.url, auth_token=SECRET)
    report = await caller.run(SCRIPT)
    await asyncio.wait_for(fake.closed_by_peer.wait(), 5)
    hook = fake.webhook
    assert hook["method"] == "GET" and hook["path"] == "/voice/vonage" and hook["body"] == b""
    query = dict(hook["query"])
    assert [k for k, _ in hook["query"]] == ["to", "from", "uuid", "conversation_uuid", "region_url"]
    assert query["uuid"] == caller.call_sid and query["from"] == "15005550006" and query["to"] == "15005550001"
    scheme, _, token = hook["headers"]["Authorization"].partition(" ")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert scheme == "Bearer" and claims["iss"] == "Vonage" and uuid.UUID(claims["jti"])
    assert claims["payload_hash"] == hashlib.sha256(orjson.dumps(query)).hexdigest()
    assert report.sample_rate == fake.rate and report.stream_parameters["token"] == "v1.t"
    (_, connected), *rest = fake.text
    assert connected == {"event": "websocket:connected", "content-type": f"audio/l16;rate={fake.rate}",
                         "call_uuid": caller.call_sid, "token": "v1.t", "from": "15005550006"}
    assert fake.binary and {len(f) for f in fake.binary} == {fake.rate // 25}  # 20 ms each, nothing else
    assert fake.binary == caller.sent_frames[: len(fake.binary)]
    assert report.closed_by == "caller" and "stop" not in {f.get("event") for _, f in rest}
    # Both notifies answered with their payload, each once its audio (100 ms, then 200 ms) had played.
    notified = [(t, f["payload"]) for t, f in rest if f.get("event") == "websocket:notify"]
    assert [p for _, p in notified] == [{"name": "a", "n": 1}, {"name": "b"}]
    assert notified[0][0] >= 95 and notified[1][0] >= 195
    assert report.frames_received == 10 and report.media_ms_received == 200 and len(report.heard) == 1600
    assert report.frames_rejected == 0 and report.notifies_dropped == []


def test_the_8_to_16_khz_interpolation_is_exact_in_length_and_level():
    caller = VonageCaller("http://gw")
    caller.rate = 16000
    out = [caller.l16_frame(tone(20, amplitude=0.3)) for _ in range(3)]
    assert [len(f) for f in out] == [640] * 3
    level = float(np.sqrt(np.mean(np.frombuffer(out[1], "<i2").astype(float) ** 2)))
    assert abs(20 * np.log10(level / (0.3 * 32767 / np.sqrt(2)))) < 0.5


async def test_a_post_webhook_carries_the_fields_as_json(fake: FakeGateway):
    caller = VonageCaller(fake.url, auth_token=SECRET, method="POST")
    await caller.webhook()
    await caller.close()
    hook = fake.webhook
    assert hook["method"] == "POST" and orjson.loads(hook["body"])["uuid"] == caller.call_sid
    claims = jwt.decode(hook["headers"]["Authorization"][7:], SECRET, algorithms=["HS256"])
    assert claims["payload_hash"] == hashlib.sha256(hook["body"]).hexdigest()


@pytest.mark.parametrize("fake", [("clear", 16000)], indirect=True)
async def test_a_clear_is_answered_and_pending_notifies_are_dropped(fake: FakeGateway):
    caller = VonageCaller(fake.url)
    report = await caller.run(SCRIPT)
    await asyncio.wait_for(fake.closed_by_peer.wait(), 5)
    events = [f.get("event") for _, f in fake.text]
    assert events.count("websocket:cleared") == 1
    assert [f["payload"] for _, f in fake.text if f.get("event") == "websocket:notify"] == [{"name": "a", "n": 1}]
    assert report.notifies_dropped == [{"name": "b"}] and report.marks_flushed == ["2"]
    (clear,) = report.clears
    assert 140 <= clear["segment_played_ms"] <= 200 and clear["flushed_marks"] == 1
    assert 1100 <= len(report.heard) <= 1600  # the second 100 ms was cut


@pytest.mark.parametrize("fake", [("bad-frames", 16000)], indirect=True)
async def test_frames_that_are_not_20_ms_are_rejected_and_counted(fake: FakeGateway):
    caller = VonageCaller(fake.url)
    report = await caller.run(SCRIPT)
    assert report.frames_rejected == 2 and report.frames_received == 10  # neither was played
    assert [e for e in report.errors if "not 20 ms" in e] == [
        "binary frame of 100 bytes, not 20 ms (640 bytes): rejected",
        "binary frame of 642 bytes, not 20 ms (640 bytes): rejected"]
