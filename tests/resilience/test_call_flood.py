"""A flood of 1,000 calls opened and closed: afterwards no call, no task and no memory is left behind."""

from __future__ import annotations

import asyncio
import base64
import gc
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from gateway.sim.audio import FRAME_BYTES, speech_like
from gateway.sim.echo import EchoLine

from .conftest import (
    Gateway,
    assert_unaffected,
    bystander,
    no_leaks,
    sample,
    start_gateway,
    tasks_now,
    twiml_parameters,
)

CALLS = 1000
AT_ONCE = 50
SILENCE = base64.b64encode(b"\xff" * 160).decode()
_TURN = speech_like(300, seed=71) + b"\xff" * (400 * 8)
TURN = [base64.b64encode(_TURN[i:i + FRAME_BYTES]).decode() for i in range(0, len(_TURN), FRAME_BYTES)]


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.fixture
async def quiet_echo() -> AsyncIterator[EchoLine]:
    line = EchoLine(pace=2.0, delta_ms=100, record_audio_events=False)
    await line.start()
    yield line
    await line.stop()


def media(stream_sid: str, k: int, payload: str) -> str:
    return orjson.dumps({"event": "media", "streamSid": stream_sid, "media": {
        "track": "inbound", "chunk": str(k + 1), "timestamp": str(20 * k), "payload": payload}}).decode()


async def one_call(http: aiohttp.ClientSession, gw: Gateway, i: int) -> int | None:
    """Twilio's side of a short call: webhook, media socket, start, stop; the close code. Every other call
    first says something and hangs up when the answer starts (its upstream session up, a response live);
    the others hang up at once, often before their upstream session is even open."""
    call_sid, stream_sid = f"CA{i:032x}", f"MZ{i:032x}"
    async with http.post(gw.url + "/voice", data={"CallSid": call_sid, "From": "+15005550006",
                                                  "To": "+15005550001"}) as resp:
        body = await resp.text()
    parameters = twiml_parameters(body)  # the token, and the agent it is bound to
    async with http.ws_connect(gw.url.replace("http", "ws") + "/media") as ws:
        await ws.send_str('{"event":"connected","protocol":"Call","version":"1.0.0"}')
        await ws.send_str(orjson.dumps({"event": "start", "streamSid": stream_sid, "start": {
            "accountSid": "AC" + "3" * 32, "streamSid": stream_sid, "callSid": call_sid, "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}).decode())
        if i % 2:
            for k, payload in enumerate(TURN):
                await ws.send_str(media(stream_sid, k, payload))
            async with asyncio.timeout(20):
                while (await ws.receive()).type is aiohttp.WSMsgType.TEXT and not ws.closed:
                    break  # the first message from the gateway: the answer's audio
        else:
            await ws.send_str(media(stream_sid, 0, SILENCE))
        await ws.send_str(orjson.dumps({"event": "stop", "streamSid": stream_sid}).decode())
        async with asyncio.timeout(20):
            while (await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                pass  # the rest of the answer, until the gateway closes
        return ws.close_code


async def flood(gw: Gateway, echo: EchoLine, first: int, count: int) -> list[int | None]:
    gate = asyncio.Semaphore(AT_ONCE)

    async def call(i: int) -> int | None:
        async with gate:
            return await one_call(http, gw, i)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=AT_ONCE)) as http:
        codes = await asyncio.gather(*(call(i) for i in range(first, first + count)))
    await asyncio.wait_for(gw.state.idle.wait(), 10)
    opened = len(echo.sessions)
    assert opened >= count // 2, opened  # half the calls, at least, had a live upstream session
    for session in echo.sessions:  # the echo line keeps every session for tests to inspect: let them go
        await asyncio.wait_for(session.closed.wait(), 5)
    echo.sessions.clear()
    return codes


async def test_a_thousand_calls_leave_nothing_behind(quiet_echo: EchoLine):
    gw, runner = await start_gateway(quiet_echo, "ga")
    try:
        def ended() -> float:  # a caller who hangs up before the upstream answered is "abandoned"
            return sum(sample("gateway_calls_total", {"carrier": "twilio", "provider": "custom", "outcome": outcome})
                       for outcome in ("completed", "abandoned"))

        completed = ended()
        # Warm-up, the same flood: imports, caches, the allocator's and the loop's high-water marks (the first
        # 1,000 calls raise RSS by about 18 MB once; further floods add well under 1 MB each).
        await flood(gw, quiet_echo, 0, CALLS)
        gc.collect()
        baseline_tasks, baseline_rss = tasks_now(), rss_bytes()

        other = bystander(gw)  # a real conversation in the middle of the flood
        codes = await flood(gw, quiet_echo, CALLS, CALLS)
        assert_unaffected(await other)
        assert codes == [1000] * CALLS
        await no_leaks(gw, baseline_tasks)
        gc.collect()
        growth = rss_bytes() - baseline_rss
        assert growth < 20 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB"
        assert ended() == completed + 2 * CALLS + 1
        assert len(gw.state.tokens._used) <= 2 * CALLS + 1  # single-use nonces: bounded by the TTL
    finally:
        await runner.cleanup()
