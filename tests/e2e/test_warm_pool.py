"""Calls through the real app with the warm upstream pool on: the call claims an idle session instead of
dialling out, configures it and is answered; the pool refills; a replacement session (after a drop) is
claimed from the pool too. In both dialects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller

from .conftest import sample, start_gateway


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - pool and counters change without an event to wait on
            await asyncio.sleep(0.01)


def hits() -> float:
    return sample("gateway_warm_upstream_claims_total", {"result": "hit"})


async def test_a_call_claims_a_warm_session_and_the_pool_refills(echo, dialect: str):
    gw, runner = await start_gateway(echo, dialect, WARM_UPSTREAM_SESSIONS="2", AGENT_GREETING="Hi!")
    try:
        warm = gw.state.warm
        assert warm is not None
        await until(lambda: warm.pool.idle == 2)
        assert len(echo.sessions) == 2
        before = hits()
        caller = SimulatedCaller(gw.url)
        report = await caller.run(CallScript(utterances=[speech_like(600, seed=21)]))
        assert report.errors == [] and report.closed_by == "caller"
        assert len(report.turn_latencies_ms) == 1 and report.media_ms_received >= 600  # greeting + echo
        assert hits() == before + 1
        used = [s for s in echo.sessions if s.received]
        assert len(used) == 1 and used[0] in echo.sessions[:2]  # a pooled session, not a new one
        session = used[0]
        assert session.dialect == dialect and session.errors_sent == []
        assert [e["type"] for e in session.received][:2] == ["session.update", "response.create"]
        await asyncio.wait_for(session.closed.wait(), 2.0)  # the call's end closed it
        await until(lambda: warm.pool.idle == 2)  # refilled
        assert len(echo.sessions) == 3
        assert sample("gateway_warm_upstream_sessions_idle") == 2
    finally:
        await runner.cleanup()
    assert all(s.closed.is_set() for s in echo.sessions)  # the idle ones too, at shutdown


async def test_a_replacement_session_is_claimed_from_the_pool(echo, dialect: str):
    gw, runner = await start_gateway(echo, dialect, WARM_UPSTREAM_SESSIONS="1")
    try:
        warm = gw.state.warm
        assert warm is not None
        await until(lambda: warm.pool.idle == 1)
        before = hits()
        caller = SimulatedCaller(gw.url)
        await caller.connect()
        first = echo.sessions[0]
        await first.wait_for_event("session.update")
        await until(lambda: warm.pool.idle == 1)  # its refill is in
        await first.close(1011, "server going away")
        replacement = echo.sessions[1]
        await replacement.wait_for_event("session.update")  # the pooled session, configured by the call
        report = await caller.speak(CallScript(utterances=[speech_like(500, seed=22)]))
        assert report.errors == [] and len(report.turn_latencies_ms) == 1
        assert hits() == before + 2
    finally:
        await runner.cleanup()
