"""Fault injection over real loopback sockets: the peers that misbehave on purpose, and the checks that
every fault stays inside its call (the other call goes on, no task and no call is left behind)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from gateway.app import create_app, make_runner
from gateway.config import load_settings
from gateway.sim.audio import speech_like
from gateway.sim.caller import CallReport, CallScript, SimulatedCaller
from gateway.sim.echo import EchoLine
from gateway.sim.twilio_api import FakeTwilioApi

from ..e2e.conftest import AUTH_TOKEN, Gateway, sample, start_gateway, twiml_parameters

__all__ = ["AUTH_TOKEN", "Gateway", "sample", "start_gateway", "twiml_parameters"]


async def start_gateway_at(upstream_url: str, **env: str) -> tuple[Gateway, web.AppRunner]:
    """The real app on a loopback port, in front of any Realtime server (not only the echo line)."""
    settings = load_settings({"REALTIME_URL": upstream_url, "VAD_SILENCE_DURATION_MS": "300",
                              "VAD_PREFIX_PADDING_MS": "100", **env})
    runner = make_runner(create_app(settings), settings)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return Gateway(f"http://127.0.0.1:{runner.addresses[0][1]}", runner.app, None), runner  # type: ignore[arg-type]


async def eventually(check: Callable[[], bool], within_s: float = 5.0, what: str = "condition") -> None:
    """Poll a condition that has no event to wait on (bounded; short sleeps)."""
    try:
        async with asyncio.timeout(within_s):
            while not check():  # noqa: ASYNC110 - these conditions have no event to wait on
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not within {within_s} s: {what}") from None


class FaultyUpstream:
    """A TCP front for the echo line that misbehaves per new connection, as `mode` says when it arrives:
    pipe (forward to the echo line), silent (accept, never answer the handshake), reject (HTTP 401),
    deaf (forward the handshake, then never read from the client again).
    `kill(i)` resets the i-th connection in both directions, like a crashed server."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode = "pipe"
        self.connections: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1/realtime"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def kill(self, index: int) -> None:
        client, upstream = self.connections[index]
        client.transport.abort()
        if upstream is not None:
            upstream.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        mode = self.mode
        try:
            if mode == "silent":
                self.connections.append((writer, None))
                while await reader.read(4096):
                    pass
            elif mode == "reject":
                self.connections.append((writer, None))
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\n{}")
                await writer.drain()
            elif mode == "deaf":
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
                self.connections.append((writer, up_writer))
                up_writer.write(await reader.readuntil(b"\r\n\r\n"))
                writer.transport.pause_reading()
                await _pipe(up_reader, writer)
            else:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
                self.connections.append((writer, up_writer))
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self._handlers.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.transport.abort()


FakeTwilioRest = FakeTwilioApi  # Twilio's REST API as the fallback, hang-up and transfer use it (gateway.sim)


@pytest.fixture
async def echo() -> AsyncIterator[EchoLine]:
    line = EchoLine(pace=2.0, delta_ms=100)
    await line.start()
    yield line
    await line.stop()


@pytest.fixture
async def faulty(echo: EchoLine) -> AsyncIterator[FaultyUpstream]:
    proxy = FaultyUpstream(echo.port)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def twilio_rest() -> AsyncIterator[FakeTwilioApi]:
    fake = await FakeTwilioApi().start()
    yield fake
    await fake.stop()


BYSTANDER = CallScript(utterances=[speech_like(500, seed=31)], lead_silence_ms=200, hangup_after_idle_ms=300)
LONG_BYSTANDER = CallScript(utterances=[speech_like(500, seed=31), speech_like(400, seed=32)], lead_silence_ms=200,
                            hangup_after_idle_ms=300, idle_before_next_ms=500)


def assert_unaffected(report: CallReport) -> None:
    """The other call: answered on every turn, never cut off, hung up by its own caller."""
    assert report.errors == [], report.errors
    assert report.utterance_ends_ms and len(report.turn_latencies_ms) == len(report.utterance_ends_ms), report.events
    assert report.clears == [] and report.closed_by == "caller"


def bystander(gateway: Gateway, auth_token: str | None = None,
              script: CallScript = BYSTANDER) -> asyncio.Task[CallReport]:
    """Another call, going on while a fault is injected into one call."""
    return asyncio.create_task(SimulatedCaller(gateway.url, auth_token=auth_token).run(script))


async def no_leaks(gateway: Gateway, baseline_tasks: int, within_s: float = 5.0) -> None:
    """Every call gone from the state and the metrics, and the asyncio tasks back to the baseline."""
    await asyncio.wait_for(gateway.state.idle.wait(), within_s)
    assert gateway.state.calls == set()
    assert sample("gateway_calls_active") == 0
    try:
        await eventually(lambda: len(asyncio.all_tasks()) <= baseline_tasks, within_s,
                         f"tasks back to {baseline_tasks}")
    except AssertionError:
        raise AssertionError(f"tasks left: {asyncio.all_tasks()}") from None


def tasks_now() -> int:
    return len(asyncio.all_tasks())
