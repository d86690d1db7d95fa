"""What a public port meets, on the real process (`python -m gateway serve`): oversized headers and
half-sent requests. Every log line stays JSON and redacted; stalled connections are closed; a media
WebSocket in use is not; the Server header names no versions."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller

from .test_drain import serve  # noqa: F401 - fixture

ADMIN_TOKEN = "admin-token-for-hygiene-tests-0123456789"


async def test_a_huge_header_is_refused_and_logged_as_one_redacted_json_line(serve):  # noqa: F811
    gateway = serve(ADMIN_TOKEN=ADMIN_TOKEN)
    await gateway.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    junk = ("X" * 1000 + ADMIN_TOKEN) * 100  # ~100 KB, with a secret inside
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Junk: {junk}\r\n\r\n".encode())
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 10)
    assert status.split()[1] in (b"400", b"431"), status
    writer.close()
    async with aiohttp.ClientSession() as http, http.get(gateway.url + "/healthz") as resp:
        assert resp.status == 200  # and the process serves on
    gateway.terminate()
    assert await gateway.exit_code() == 0
    assert not [line for line in gateway.lines if line.get("event") == "unparsed"], "non-JSON output"
    assert ADMIN_TOKEN not in orjson.dumps(gateway.lines).decode()
    assert any(line.get("logger", "").startswith("aiohttp") for line in gateway.lines)


async def test_half_sent_requests_are_closed_but_a_call_in_progress_is_not(serve):  # noqa: F811
    gateway = serve(HTTP_IDLE_TIMEOUT_S="1")
    await gateway.start()
    caller = SimulatedCaller(gateway.url)
    call = asyncio.create_task(caller.run(CallScript(utterances=[speech_like(600, seed=5)] * 3)))
    stalled = []
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        writer.write(b"POST /voice/twilio HTTP/1.1\r\nHost: x\r\nContent-")  # and then nothing
        await writer.drain()
        stalled.append((reader, writer))
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", gateway.port)  # sends nothing at all
    stalled.append((idle_reader, idle_writer))
    for reader, writer in stalled:
        assert await asyncio.wait_for(reader.read(), 10) == b""  # the gateway closed it
        writer.close()
    report = await call  # about 4 s of call, well past the idle timeout
    assert report.errors == [] and report.closed_by == "caller" and len(report.turn_latencies_ms) == 3
    async with aiohttp.ClientSession() as http, http.get(gateway.url + "/healthz") as resp:
        assert resp.headers["Server"] == "voice-gateway"
    gateway.terminate()
    assert await gateway.exit_code() == 0
