"""Carrier faults: garbage, binary and oversized frames, frames for another stream, media before start, a
frame flood, and a carrier (or an upstream) that stops reading. Each with another call going on beside it."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
from aiohttp import web

from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller

from .conftest import (
    assert_unaffected,
    bystander,
    eventually,
    no_leaks,
    sample,
    start_gateway,
    start_gateway_at,
    tasks_now,
    twiml_parameters,
)

CARRIER = {"carrier": "twilio"}
ONE_TURN = CallScript(utterances=[speech_like(500, seed=61)], lead_silence_ms=0, hangup_after_idle_ms=300)


def violations(kind: str) -> float:
    return sample("gateway_carrier_protocol_errors_total", {**CARRIER, "kind": kind})


def outcome(name: str) -> float:
    return sample("gateway_calls_total", {**CARRIER, "provider": "custom", "outcome": name})


async def ready(echo, index: int) -> None:
    await (await echo.wait_for_session(index)).wait_for_event("session.update")


async def test_garbage_binary_and_foreign_frames_are_counted_and_the_call_goes_on(echo):
    gw, runner = await start_gateway(echo, "ga")
    try:
        baseline = tasks_now()
        kinds = ["invalid_json", "binary_frame", "unknown_stream", "invalid_frame", "duplicate_start", "invalid_mark"]
        before = {k: violations(k) for k in kinds}
        caller = SimulatedCaller(gw.url)
        await caller.connect()
        await ready(echo, 0)
        other = bystander(gw)
        await echo.wait_for_session(1)
        await caller.send_raw("\x00\xff garbage {{{")
        await caller.send_raw(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
        await caller.send_raw('{"event":"media","streamSid":"MZ' + "0" * 32 + '","media":{"payload":"//8="}}')
        await caller.send_raw('[1, 2, 3]')
        await caller.send_raw(orjson.dumps({"event": "start", "streamSid": caller.stream_sid, "start": {
            "streamSid": caller.stream_sid, "callSid": caller.call_sid}}).decode())
        await caller.send_raw('{"event":"mark","streamSid":"' + caller.stream_sid + '","mark":{}}')
        report = await caller.speak(ONE_TURN)
        assert report.errors == [] and len(report.turn_latencies_ms) == 1
        for k in kinds:
            assert violations(k) == before[k] + 1, k
        assert_unaffected(await other)
        await no_leaks(gw, baseline)
    finally:
        await runner.cleanup()


async def webhook_token(gw_url: str, call_sid: str) -> dict[str, str]:
    """The stream parameters the webhook's answer names: the token, and the agent it is bound to."""
    caller = SimulatedCaller(gw_url, call_sid=call_sid)
    status, body = await caller.webhook()
    await caller.close()
    assert status == 200
    return twiml_parameters(body)


def start_frame(call_sid: str, stream_sid: str, parameters: dict[str, str]) -> str:
    return orjson.dumps({"event": "start", "sequenceNumber": "1", "streamSid": stream_sid, "start": {
        "accountSid": "AC" + "3" * 32, "streamSid": stream_sid, "callSid": call_sid, "tracks": ["inbound"],
        "customParameters": parameters,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}).decode()


def media_frame(stream_sid: str, payload: str) -> str:
    return orjson.dumps({"event": "media", "streamSid": stream_sid, "media": {
        "track": "inbound", "chunk": "1", "timestamp": "0", "payload": payload}}).decode()


async def test_media_before_start_is_ignored_and_the_stream_then_served(echo):
    gw, runner = await start_gateway(echo, "ga")
    try:
        baseline = tasks_now()
        before, completed = violations("media_before_start"), outcome("completed")
        other = bystander(gw)
        await ready(echo, 0)
        call_sid, stream_sid = "CA" + "5" * 32, "MZ" + "6" * 32
        token = await webhook_token(gw.url, call_sid)
        async with aiohttp.ClientSession() as http, http.ws_connect(gw.url.replace("http", "ws") + "/media") as ws:
            await ws.send_str('{"event":"connected","protocol":"Call","version":"1.0.0"}')
            for _ in range(3):
                await ws.send_str(media_frame(stream_sid, "//8="))
            await ws.send_str(start_frame(call_sid, stream_sid, token))
            session = await echo.wait_for_session(1)
            await ws.send_str(media_frame(stream_sid, base64.b64encode(b"\xff" * 160).decode()))
            await session.wait_for_event("input_audio_buffer.append")
            await ws.send_str(orjson.dumps({"event": "stop", "streamSid": stream_sid}).decode())
            msg = await asyncio.wait_for(ws.receive(), 5)
            assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 1000
        assert violations("media_before_start") == before + 3
        assert_unaffected(await other)
        await no_leaks(gw, baseline)
        assert outcome("completed") == completed + 2
    finally:
        await runner.cleanup()


async def test_an_oversized_frame_closes_only_its_own_stream(echo):
    gw, runner = await start_gateway(echo, "ga", MAX_CARRIER_MESSAGE_BYTES="4096")
    try:
        baseline = tasks_now()
        carrier_errors = outcome("carrier_error")
        caller = SimulatedCaller(gw.url)
        await caller.connect()
        await ready(echo, 0)
        other = bystander(gw)
        await echo.wait_for_session(1)
        await caller.send_raw(media_frame(caller.stream_sid, "A" * 5000))
        assert await caller.wait_closed(5) == 1009  # message too big
        await caller.close()
        assert_unaffected(await other)
        await no_leaks(gw, baseline)
        assert outcome("carrier_error") == carrier_errors + 1
    finally:
        await runner.cleanup()


async def test_a_frame_flood_is_rate_limited_and_the_call_goes_on(echo):
    gw, runner = await start_gateway(echo, "ga", MAX_FRAMES_PER_SECOND="100")
    try:
        baseline = tasks_now()
        dropped = sample("gateway_frames_dropped_total", {"reason": "rate_limited"})
        completed = outcome("completed")
        other = bystander(gw)
        await ready(echo, 0)
        call_sid, stream_sid = "CA" + "9" * 32, "MZ" + "a" * 32
        token = await webhook_token(gw.url, call_sid)
        silence = media_frame(stream_sid, base64.b64encode(b"\xff" * 160).decode())
        async with aiohttp.ClientSession() as http, http.ws_connect(gw.url.replace("http", "ws") + "/media") as ws:
            await ws.send_str(start_frame(call_sid, stream_sid, token))
            session = await echo.wait_for_session(1)
            await session.wait_for_event("session.update")
            loop = asyncio.get_running_loop()
            started = loop.time()
            for _ in range(400):  # 8 s of audio at once
                await ws.send_str(silence)
            flood_s = loop.time() - started
            await session.wait_for_event("input_audio_buffer.append", count=100)
            # Then the stream goes on at Twilio's pace, and is relayed again once the window has passed.
            appended = session.appended_ms
            while session.appended_ms < appended + 200:
                await ws.send_str(silence)
                await asyncio.sleep(0.02)
            await ws.send_str(orjson.dumps({"event": "stop", "streamSid": stream_sid}).decode())
            await asyncio.wait_for(ws.receive(), 5)
        assert_unaffected(await other)
        await no_leaks(gw, baseline)
        limited = sample("gateway_frames_dropped_total", {"reason": "rate_limited"}) - dropped
        if flood_s < 0.9:  # all 400 inside one window: only the limit went through (and the window's tail)
            assert limited >= 300
        else:
            assert limited >= 100
        assert outcome("completed") == completed + 2
    finally:
        await runner.cleanup()


# --- a peer that stops reading ---------------------------------------------------------------------

BIG_DELTA = base64.b64encode(b"\xff" * 36_000).decode()  # 4.5 s of audio in one 48 KB message


@pytest.fixture
async def flooding_upstream() -> AsyncIterator[str]:
    """A Realtime server that answers the session.update with a torrent of audio (7 MB at once)."""

    async def realtime(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        await ws.send_str('{"type":"session.created","session":{"id":"sess_flood"}}')
        async for msg in ws:
            if orjson.loads(msg.data).get("type") != "session.update":
                continue
            await ws.send_str('{"type":"response.created","response":{"id":"resp_1"}}')
            for _ in range(150):
                await ws.send_str(orjson.dumps({"type": "response.output_audio.delta", "response_id": "resp_1",
                                                "item_id": "item_1", "content_index": 0,
                                                "delta": BIG_DELTA}).decode())
        return ws

    app = web.Application()
    app.router.add_get("/v1/realtime", realtime)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"ws://127.0.0.1:{runner.addresses[0][1]}/v1/realtime"
    await runner.cleanup()


async def test_a_carrier_that_stops_reading_is_given_up_with_bounded_memory(flooding_upstream):
    gw, runner = await start_gateway_at(flooding_upstream, SEND_STALL_TIMEOUT_S="1")
    try:
        baseline = tasks_now()
        stalls, carrier_errors = sample("gateway_send_stalls_total", {"side": "carrier"}), outcome("carrier_error")
        call_sid, stream_sid = "CA" + "7" * 32, "MZ" + "8" * 32
        token = await webhook_token(gw.url, call_sid)
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(gw.url.replace("http", "ws") + "/media")
            await ws.send_str(start_frame(call_sid, stream_sid, token))  # ... and never read again
            await eventually(lambda: bool(gw.state.calls), 5, "the call is up")
            (session,) = gw.state.calls
            most = 0

            def stalled() -> bool:
                nonlocal most
                transport = session.carrier_transport
                if transport is not None and not transport.is_closing():
                    most = max(most, transport.get_write_buffer_size())
                return not gw.state.calls

            await eventually(stalled, 15, "the stalled call is given up")
            await ws.close()
        assert sample("gateway_send_stalls_total", {"side": "carrier"}) == stalls + 1
        assert outcome("carrier_error") == carrier_errors + 1
        assert 16 * 1024 < most < 1 << 20  # it backed up, and what waits for the carrier stays bounded
        await no_leaks(gw, baseline)
    finally:
        await runner.cleanup()


async def test_an_upstream_that_stops_reading_is_replaced(echo, faulty):
    gw, runner = await start_gateway(echo, "ga", REALTIME_URL=faulty.url, SEND_STALL_TIMEOUT_S="1",
                                     MAX_FRAMES_PER_SECOND="0")
    try:
        baseline = tasks_now()
        stalls = sample("gateway_send_stalls_total", {"side": "upstream"})
        faulty.mode = "deaf"  # forwards the handshake, then reads nothing more from the gateway
        caller = SimulatedCaller(gw.url)
        await caller.connect()
        await eventually(lambda: len(faulty.connections) == 1, 5, "the upstream is connected")
        faulty.mode = "pipe"
        big = media_frame(caller.stream_sid, base64.b64encode(b"\xff" * 45_000).decode())

        async def flood() -> None:
            for _ in range(150):  # 9 MB of silence: more than the socket buffers hold
                await caller.send_raw(big)

        flooding = asyncio.create_task(flood())
        replacement = await echo.wait_for_session(1, timeout=15)
        await replacement.wait_for_event("session.update")
        await flooding
        report = await caller.speak(ONE_TURN)
        assert report.errors == [] and len(report.turn_latencies_ms) == 1
        assert sample("gateway_send_stalls_total", {"side": "upstream"}) == stalls + 1
        faulty.kill(0)  # the deaf connection is the proxy's to drop; the gateway already let go of it
        await no_leaks(gw, baseline)
    finally:
        await runner.cleanup()
