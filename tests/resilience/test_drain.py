"""SIGTERM during calls, on the real process (`python -m gateway serve`, offline echo line behind it):
readiness turns 503, liveness stays 200, new calls hear "busy", active calls run on, then exit 0."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller

from ..e2e.test_commands import clean_env, free_port


class ServeProcess:
    """The gateway as a child process; its JSON log lines are read as they come (the pipe never fills)."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.env = clean_env(PORT=str(self.port), LOG_LEVEL="debug", **env)
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[dict] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._new_line = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", "--env-file", "none", env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.create_task(self._read())
        await self.wait_for("gateway_listening")

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while raw := await self.proc.stdout.readline():
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                line = {"event": "unparsed", "text": raw.decode(errors="replace")}
            async with self._new_line:
                self.lines.append(line)
                self._new_line.notify_all()
        async with self._new_line:
            self.lines.append({"event": "<eof>"})
            self._new_line.notify_all()

    async def wait_for(self, event: str, within_s: float = 15.0, **fields: object) -> dict:
        def found() -> dict | None:
            for line in self.lines:
                if line.get("event") == event and all(line.get(k) == v for k, v in fields.items()):
                    return line
            return None

        async with asyncio.timeout(within_s), self._new_line:
            while (line := found()) is None:
                assert not any(x.get("event") == "<eof>" for x in self.lines), f"exited before {event}: {self.lines}"
                await self._new_line.wait()
        return line

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    async def exit_code(self, within_s: float = 15.0) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), within_s)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)


@pytest.fixture
async def serve() -> AsyncIterator[type[ServeProcess]]:
    started: list[ServeProcess] = []

    class Tracked(ServeProcess):
        async def start(self) -> None:
            started.append(self)
            await super().start()

    yield Tracked
    for process in started:
        await process.stop()


async def get_status(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as resp:
        return resp.status


async def test_sigterm_lets_active_calls_finish_and_refuses_new_ones(serve):
    gateway = serve(DRAIN_TIMEOUT_S="60")
    await gateway.start()
    script = CallScript(utterances=[speech_like(600, seed=81), speech_like(600, seed=82)], lead_silence_ms=200)
    caller = SimulatedCaller(gateway.url)
    active = asyncio.create_task(caller.run(script))
    await gateway.wait_for("session_updated", call_sid=caller.call_sid)

    gateway.terminate()
    await gateway.wait_for("drain_started")
    async with aiohttp.ClientSession() as http:
        assert await get_status(http, gateway.url + "/readyz") == 503
        assert await get_status(http, gateway.url + "/healthz") == 200
        async with http.post(gateway.url + "/voice", data={"CallSid": "CA" + "b" * 32}) as resp:
            assert resp.status == 200
            busy = await resp.text()
    assert "<Say>" in busy and "<Hangup />" in busy and "<Connect>" not in busy

    report = await active  # the call in progress goes on to its end
    assert report.errors == [] and len(report.turn_latencies_ms) == 2 and report.closed_by == "caller"
    summary = await gateway.wait_for("call_summary", call_sid=caller.call_sid)
    assert summary["outcome"] == "completed"
    assert await gateway.exit_code() == 0
    await gateway.wait_for("gateway_stopped")
    assert any(line.get("event") == "call_refused_busy" for line in gateway.lines)


async def test_calls_still_active_when_the_drain_times_out_end_as_drained(serve):
    gateway = serve(DRAIN_TIMEOUT_S="1")
    await gateway.start()
    callers = [SimulatedCaller(gateway.url) for _ in range(2)]
    for caller in callers:
        await caller.connect()
        await gateway.wait_for("session_updated", call_sid=caller.call_sid)
    speaking = [asyncio.create_task(c.speak(CallScript(utterances=[speech_like(500, seed=83)] * 20)))
                for c in callers]

    gateway.terminate()
    await gateway.wait_for("drain_started")
    reports = await asyncio.wait_for(asyncio.gather(*speaking), 15)
    assert [r.closed_by for r in reports] == ["gateway", "gateway"]
    assert [r.close_code for r in reports] == [1001, 1001]
    for caller in callers:
        summary = await gateway.wait_for("call_summary", call_sid=caller.call_sid)
        assert summary["outcome"] == "drained"
    assert await gateway.exit_code() == 0
