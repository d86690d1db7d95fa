"""A second carrier is one class behind the interface and one registry entry: nothing else in the gateway
changes. This toy carrier (JSON webhooks, its own frames, no marks) runs a real call with barge-in
through the real app: routes come from the registry, the codec from its start message, and with no
marks the truncate comes from the clock-based playback estimate."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.carriers import registry
from gateway.carriers.base import (
    Answer,
    Capabilities,
    Carrier,
    Fallback,
    InboundCall,
    StreamFace,
    WebhookRefused,
    WebhookRequest,
)
from gateway.core.codec import PCMU
from gateway.core.events import (
    CallerAudio,
    CarrierEvent,
    ClearPlayback,
    PlayAudio,
    ProtocolViolation,
    SendMark,
    StreamStart,
    StreamStop,
)
from gateway.env import Env
from gateway.sim.audio import FRAME_MS, b64, frames, silence, speech_like

from ..e2e.conftest import echo, start_gateway  # noqa: F401 - echo is a fixture


class ToyStream:
    def decode(self, data: bytes | str) -> CarrierEvent:
        frame = orjson.loads(data)
        kind = frame.get("type")
        if kind == "audio":
            return CallerAudio(frame["b64"])
        if kind == "start":
            return StreamStart(frame["call"], frame["call"], None, frame["params"], PCMU)
        if kind == "bye":
            return StreamStop()
        return ProtocolViolation("unknown_event", str(kind))

    def decode_binary(self, data: bytes) -> CarrierEvent:
        return ProtocolViolation("binary_frame", f"{len(data)} bytes")

    def encode(self, action: PlayAudio | SendMark | ClearPlayback) -> bytes:
        if type(action) is PlayAudio:
            return orjson.dumps({"type": "play", "b64": action.payload})
        return orjson.dumps({"type": "flush"})  # no marks: ClearPlayback is all that is left


class ToyCarrier(Carrier):
    name = "toy"
    capabilities = Capabilities(marks=False, binary_audio=False, codecs=(PCMU,))

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.control: list[tuple[str, str]] = []  # (action, call id): what call control was asked

    @classmethod
    def load_settings(cls, env: Env) -> dict[str, str]:
        return {}

    @property
    def signs_webhooks(self) -> bool:
        return False

    def verify_webhook(self, request: WebhookRequest) -> bool:
        return True

    def inbound_call(self, request: WebhookRequest) -> InboundCall:
        call = orjson.loads(request.body or b"{}").get("call")
        if not isinstance(call, str) or not call.startswith("T-"):
            raise WebhookRefused("bad_request", "call id missing")
        return InboundCall(call_id=call)

    def answer(self, call: InboundCall, stream_url: str, parameters: dict[str, str]) -> Answer:
        return Answer(orjson.dumps({"stream": stream_url, "params": parameters}).decode(), "application/json")

    def busy(self, message: str) -> Answer:
        return Answer(orjson.dumps({"say": message}).decode(), "application/json")

    def verify_handshake(self, stream_url: str, headers: Mapping[str, str]) -> bool:
        return True

    def stream_face(self) -> StreamFace:
        return ToyStream()

    async def fall_back(self, start: StreamStart, fallback: Fallback) -> None:
        self.control.append(("fall_back", start.call_id))

    async def hang_up(self, start: StreamStart) -> None:
        self.control.append(("hang_up", start.call_id))

    async def transfer(self, start: StreamStart, target: str) -> None:
        self.control.append(("transfer", start.call_id))


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.CARRIERS, "toy", ToyCarrier)  # the one line a new carrier adds


async def test_a_toy_carrier_without_marks_runs_a_call_with_an_exact_enough_barge_in(toy_registered, echo):  # noqa: F811
    gw, runner = await start_gateway(echo, "ga")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(gw.url + "/voice/toy", data=b'{"call": "T-1"}') as resp:
                assert resp.status == 200 and resp.content_type == "application/json"
                answer = await resp.json()
            assert answer["stream"].endswith("/media/toy") and "token" in answer["params"]
            async with http.post(gw.url + "/voice/toy", data=b'{}') as resp:
                assert resp.status == 400  # the carrier's own id check

            loop = asyncio.get_running_loop()
            played: list[tuple[float, int]] = []  # (arrival, bytes) of each play
            flushed: list[float] = []
            sent: list[str] = []
            async with http.ws_connect(answer["stream"]) as ws:
                await ws.send_str(orjson.dumps({"type": "start", "call": "T-1", "params": answer["params"]}).decode())

                async def listen() -> None:
                    async for msg in ws:
                        frame = orjson.loads(msg.data)
                        if frame["type"] == "play":
                            played.append((loop.time(), len(frame["b64"]) * 3 // 4))
                        elif frame["type"] == "flush":
                            flushed.append(loop.time())

                listener = asyncio.create_task(listen())

                async def say(audio: bytes) -> None:
                    for chunk in frames(audio):
                        sent.append(b64(chunk))
                        await ws.send_str(orjson.dumps({"type": "audio", "b64": sent[-1]}).decode())
                        await asyncio.sleep(FRAME_MS / 1000)

                await say(speech_like(800, seed=11) + silence(100))
                async with asyncio.timeout(10):
                    while not played:  # the answer starts: the caller plays it in real time from its arrival
                        await say(silence(20))
                first_play = played[0][0]
                await say(silence(300))
                await say(speech_like(600, seed=12))  # barge in ~300 ms into the answer
                async with asyncio.timeout(10):
                    while not flushed:
                        await say(silence(20))
                await say(silence(200))
                await ws.send_str('{"type": "bye"}')
                await asyncio.wait_for(listener, 10)

        session = echo.sessions[0]
        update = next(e for e in session.received if e["type"] == "session.update")
        assert update["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        appended = [e["audio"] for e in session.received if e["type"] == "input_audio_buffer.append"]
        assert appended == sent[:len(appended)] and len(appended) >= len(sent) - 5  # passed through as they were
        (truncate,) = session.truncations
        assert truncate["accepted"]
        # With no marks, what the caller heard is the clock: from the first chunk's arrival to the clear,
        # never more than was sent. The toy caller plays from arrival, so the two clocks agree closely.
        heard_ms = min((flushed[0] - first_play) * 1000.0, sum(n for _, n in played) / 8.0)
        assert abs(truncate["audio_end_ms"] - heard_ms) < 60, (truncate, heard_ms)
        assert gw.state.carriers["toy"].control == []  # nothing failed: no call control was needed
    finally:
        await runner.cleanup()
