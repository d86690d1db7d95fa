"""The warm upstream pool against the echo line on loopback: it fills, hands out open sessions with what
they said while idle, refills, replaces what the upstream closes (never handing it out), renews before the
session cap, backs off from a failing upstream and closes everything at shutdown."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from gateway.config import Agent, Upstream
from gateway.observability import metrics
from gateway.realtime import dialect
from gateway.realtime.pool import WarmPool, event_type
from gateway.sim.echo import EchoLine


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - pool and counters change without an event to wait on
            await asyncio.sleep(0.01)


@pytest.fixture
async def echo() -> AsyncIterator[EchoLine]:
    line = EchoLine(pace=0)
    await line.start()
    yield line
    await line.stop()


def upstream_of(echo: EchoLine, dialect_: str = "ga") -> Upstream:
    return Upstream(provider="custom", url=echo.url, dialect=dialect_)  # type: ignore[arg-type]


@pytest.mark.parametrize("dialect_", ["ga", "beta"])
async def test_fills_hands_out_an_open_session_and_refills(echo: EchoLine, dialect_: str):
    upstream = upstream_of(echo, dialect_)
    headers = (("OpenAI-Beta", "realtime=v1"),) if dialect_ == "beta" else ()
    upstream = Upstream(provider="custom", url=echo.url, dialect=dialect_, headers=headers)  # type: ignore[arg-type]
    pool = WarmPool(upstream, 2, 600.0)
    hits = sample("gateway_warm_upstream_claims_total", {"result": "hit"})
    pool.start()
    try:
        await until(lambda: pool.idle == 2)
        assert len(echo.sessions) == 2 and sample("gateway_warm_upstream_sessions_idle") == 2
        assert all(s.received == [] for s in echo.sessions)  # nothing asked of an idle session: no tokens
        session = await pool.claim(upstream)
        assert session is not None and session.usable and session.configured is None
        # What it said while idle comes with it, for the call's face.
        kinds = [event_type(f) for f in session.frames]
        assert kinds == (["session.created"] if dialect_ == "ga" else ["session.created", "conversation.created"])
        # It is a live session: the call configures it.
        await session.conn.send(dialect.session_update(dialect_, Agent()), text=True)  # type: ignore[arg-type]
        assert event_type(await session.conn.recv(decode=False)) == "session.updated"
        assert sample("gateway_warm_upstream_claims_total", {"result": "hit"}) == hits + 1
        await until(lambda: pool.idle == 2)  # refilled
        assert len(echo.sessions) == 3
        await session.close()
    finally:
        await pool.stop()


async def test_claims_beyond_the_idle_sessions_miss(echo: EchoLine):
    upstream = upstream_of(echo)
    pool = WarmPool(upstream, 1, 600.0)
    pool.start()
    misses = sample("gateway_warm_upstream_claims_total", {"result": "miss"})
    try:
        await until(lambda: pool.idle == 1)
        first = await pool.claim(upstream)
        second = await pool.claim(upstream)  # the refill is not in yet (or just in): never the same one
        assert first is not None
        assert second is None or second.conn is not first.conn
        if second is None:
            assert sample("gateway_warm_upstream_claims_total", {"result": "miss"}) == misses + 1
        for claimed in (first, second):
            if claimed is not None:
                await claimed.close()
        # Another upstream (an agent with another model) does not claim from this pool.
        other = Upstream(provider="custom", url=echo.url + "?model=other", dialect="ga")
        await until(lambda: pool.idle == 1)
        assert await pool.claim(other) is None and pool.idle == 1
    finally:
        await pool.stop()


async def test_a_session_the_upstream_closes_is_replaced_and_never_handed_out(echo: EchoLine):
    upstream = upstream_of(echo)
    pool = WarmPool(upstream, 1, 600.0)
    closed = sample("gateway_warm_upstream_discarded_total", {"reason": "closed"})
    pool.start()
    try:
        await until(lambda: pool.idle == 1)
        doomed = pool._idle[0].conn
        await echo.sessions[0].close(1011, "server going away")
        claimed = await pool.claim(upstream)  # at once: the close may not have been read yet
        assert claimed is None or (claimed.conn is not doomed and claimed.usable)
        if claimed is not None:
            await claimed.close()
        await until(lambda: sample("gateway_warm_upstream_discarded_total", {"reason": "closed"}) == closed + 1)
        await until(lambda: pool.idle == 1)
        fresh = await pool.claim(upstream)
        assert fresh is not None and fresh.conn is not doomed and fresh.usable
        await fresh.close()
    finally:
        await pool.stop()


async def test_an_error_while_idle_discards_the_session(echo: EchoLine):
    upstream = upstream_of(echo)
    pool = WarmPool(upstream, 1, 600.0)
    errors = sample("gateway_warm_upstream_discarded_total", {"reason": "error"})
    pool.start()
    try:
        await until(lambda: pool.idle == 1)
        await echo.sessions[0].send_error("server_error", "The server had an error.", type="server_error")
        await until(lambda: sample("gateway_warm_upstream_discarded_total", {"reason": "error"}) == errors + 1)
        await asyncio.wait_for(echo.sessions[0].closed.wait(), 5.0)  # closed by the pool, not leaked
        await until(lambda: pool.idle == 1 and len(echo.sessions) == 2)
    finally:
        await pool.stop()


async def test_sessions_are_renewed_before_the_session_cap():
    line = EchoLine(pace=0, max_session_s=3.0)  # the server's cap, scaled down
    await line.start()
    upstream = upstream_of(line)
    pool = WarmPool(upstream, 2, 0.3, renew_grace_s=0.3)
    renewed = sample("gateway_warm_upstream_discarded_total", {"reason": "renewed"})
    pool.start()
    try:
        await until(lambda: sample("gateway_warm_upstream_discarded_total", {"reason": "renewed"}) >= renewed + 4)
        await until(lambda: pool.idle == 2)
        session = await pool.claim(upstream)
        assert session is not None and session.age_s(asyncio.get_running_loop().time()) < 0.6
        await session.close()
    finally:
        await pool.stop()
        await line.stop()
    expired = [e for s in line.sessions for e in s.errors_sent if e["error"]["code"] == "session_expired"]
    assert expired == [], "a pooled session reached the server's cap"
    assert all(s.close_code != 1001 for s in line.sessions)


def _refused_url() -> str:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/v1/realtime"


async def test_a_failing_upstream_backs_off_and_is_counted():
    upstream = Upstream(provider="custom", url=_refused_url(), dialect="ga", connect_timeout_s=1.0)
    delays: list[float] = []
    enough = asyncio.Event()

    async def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) >= 6:
            enough.set()
        await asyncio.sleep(0)

    failures = sample("gateway_warm_upstream_open_failures_total")
    pool = WarmPool(upstream, 1, 600.0, sleep=sleep, backoff_s=0.1, max_backoff_s=1.0)
    pool.start()
    try:
        await asyncio.wait_for(enough.wait(), 10.0)
    finally:
        await pool.stop()
    assert delays[:6] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]  # exponential, capped: never a spin
    assert sample("gateway_warm_upstream_open_failures_total") >= failures + 6
    assert pool.idle == 0


async def test_shutdown_closes_every_session_and_task(echo: EchoLine):
    upstream = upstream_of(echo)
    pool = WarmPool(upstream, 3, 600.0)
    pool.start()
    await until(lambda: pool.idle == 3)
    tasks_before = {t for t in asyncio.all_tasks() if t.get_name().startswith("warm-")}
    assert len(tasks_before) == 4  # the keeper and one reader per idle session
    await pool.stop()
    for session in echo.sessions:
        await asyncio.wait_for(session.closed.wait(), 5.0)
    assert pool.idle == 0 and sample("gateway_warm_upstream_sessions_idle") == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("warm-")]
    assert await pool.claim(upstream) is None  # stopped: nothing is handed out, nothing reopened
    assert len(echo.sessions) == 3


async def test_a_session_update_it_was_sent_is_not_lost_between_reader_and_call(echo: EchoLine):
    """Frames that arrive while a claim stops the idle reader stay on the socket for the call."""
    upstream = upstream_of(echo)
    pool = WarmPool(upstream, 1, 600.0)
    pool.start()
    try:
        await until(lambda: pool.idle == 1)
        await echo.sessions[0].send({"type": "rate_limits.updated", "rate_limits": []})
        session = await pool.claim(upstream)
        assert session is not None
        await session.conn.send(orjson.dumps({"type": "input_audio_buffer.clear"}), text=True)
        kinds = [event_type(f) for f in session.frames]
        while "input_audio_buffer.cleared" not in kinds:
            kinds.append(event_type(await asyncio.wait_for(session.conn.recv(decode=False), 5.0)))
        assert kinds.count("rate_limits.updated") == 1 and kinds[0] == "session.created"
        await session.close()
    finally:
        await pool.stop()
