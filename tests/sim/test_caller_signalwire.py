"""The simulated caller as SignalWire: UUID ids, X-SignalWire-Signature, no handshake signature, SignalWire's
frame shapes; and `python -m gateway call --carrier`. Against a loopback fake that records the wire."""

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
from gateway.sim.caller import CallReport, CallScript, SimulatedCaller

KEY = "PSK_sim_signing_key"


class Recorder:
    def __init__(self) -> None:
        self.url = ""
        self.webhook: dict[str, Any] = {}
        self.handshake: dict[str, str] = {}
        self.frames: list[dict[str, Any]] = []
        self.done = asyncio.Event()

    async def voice(self, request: web.Request) -> web.Response:
        self.webhook = {"path": request.path, "headers": dict(request.headers), "form": dict(await request.post())}
        media = self.url.replace("http", "ws") + "/media/signalwire"
        twiml = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="{media}">'
                 '<Parameter name="token" value="t" /></Stream></Connect></Response>')
        return web.Response(text=twiml, content_type="text/xml")

    async def media(self, request: web.Request) -> web.WebSocketResponse:
        self.handshake = dict(request.headers)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                frame = orjson.loads(msg.data)
                self.frames.append(frame)
                if frame["event"] == "stop":
                    break
        self.done.set()
        return ws


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    app = web.Application()
    app.router.add_post("/voice/signalwire", rec.voice)
    app.router.add_get("/media/signalwire", rec.media)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield rec
    await runner.cleanup()


def test_ids_and_routes_per_carrier():
    twilio = SimulatedCaller("http://gw")
    assert (twilio.carrier, twilio.webhook_path) == ("twilio", "/voice/twilio")
    assert twilio.call_sid.startswith("CA") and twilio.account_sid.startswith("AC")
    assert twilio.stream_sid.startswith("MZ")
    sw = SimulatedCaller("http://gw", carrier="signalwire")
    assert sw.webhook_path == "/voice/signalwire"
    for sid in (sw.call_sid, sw.account_sid, sw.stream_sid):
        assert str(uuid.UUID(sid)) == sid
    assert SimulatedCaller("http://gw", carrier="signalwire", webhook_path="/voice").webhook_path == "/voice"
    with pytest.raises(ValueError, match="carrier must be one of twilio, signalwire"):
        SimulatedCaller("http://gw", carrier="telnyx")


async def test_it_speaks_signalwire_on_the_wire(recorder: Recorder):
    caller = SimulatedCaller(recorder.url, carrier="signalwire", auth_token=KEY)
    await caller.connect()
    report = await caller.speak(CallScript(utterances=[speech_like(100, seed=1)], answer_timeout_ms=100,
                                           lead_silence_ms=40))
    await asyncio.wait_for(recorder.done.wait(), 5)
    hook = recorder.webhook
    assert hook["path"] == "/voice/signalwire" and hook["form"]["CallSid"] == caller.call_sid
    url = recorder.url + "/voice/signalwire"
    data = url + "".join(k + hook["form"][k] for k in sorted(hook["form"]))
    expected = base64.b64encode(hmac.new(KEY.encode(), data.encode(), hashlib.sha1).digest()).decode()
    assert hook["headers"]["X-SignalWire-Signature"] == expected and "X-Twilio-Signature" not in hook["headers"]
    assert "X-SignalWire-Signature" not in recorder.handshake and "X-Twilio-Signature" not in recorder.handshake
    connected, start, *rest = recorder.frames
    assert connected == {"event": "connected", "protocol": "Call", "version": "0.2.0"}
    assert "streamSid" not in start and start["start"]["streamSid"] == caller.stream_sid
    assert start["start"]["callSid"] == caller.call_sid and start["start"]["customParameters"] == {"token": "t"}
    media = [f for f in rest if f["event"] == "media"]
    assert media and all("streamSid" not in f for f in media)
    assert rest[-1]["event"] == "stop" and "streamSid" not in rest[-1]
    assert isinstance(report, CallReport) and report.frames_sent == len(media)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    call_command.add_arguments(parser)
    return parser.parse_args(argv)


def test_the_carrier_option():
    assert parse([]).carrier == "twilio" and parse([]).auth_token is None
    for carrier in ("signalwire", "plivo", "telnyx", "vonage"):
        assert parse(["--carrier", carrier]).carrier == carrier
    with pytest.raises(SystemExit):
        parse(["--carrier", "bandwidth"])


def test_refusal_hints_name_the_carrier_s_secret_and_route():
    r = CallReport(webhook_status=403)
    assert call_command.refusal_hint(r, "http://gw", signed=False, carrier="signalwire") == (
        "the webhook refused the call (HTTP 403): set --auth-token (or SIGNALWIRE_SIGNING_KEY) to the gateway's "
        "SIGNALWIRE_SIGNING_KEY")
    assert "the gateway's SIGNALWIRE_SIGNING_KEY, and --url" in call_command.refusal_hint(
        r, "http://gw", signed=True, carrier="signalwire")
    assert call_command.refusal_hint(CallReport(webhook_status=404), "http://gw/", signed=False,
                                     carrier="signalwire").startswith(
        "nothing answers a SignalWire webhook at http://gw/voice/signalwire (HTTP 404)")
