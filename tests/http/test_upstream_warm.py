"""UpstreamLink with a warm-session claim, against the echo line: a claimed session is reported open with
its age and whether it is configured, its idle frames are decoded first; a claim that finds nothing, or
fails, dials out as before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import structlog

from gateway.config import Agent, Upstream
from gateway.core.events import SessionCreated, SessionUpdated, UpstreamEvent
from gateway.http.upstream import Opened, SessionChange, UpstreamLink
from gateway.realtime.connection import open_realtime
from gateway.realtime.face import RealtimeFace
from gateway.realtime.pool import WarmSession
from gateway.sim.echo import EchoLine


@pytest.fixture
async def line() -> AsyncIterator[EchoLine]:
    echo = EchoLine(pace=0)
    await echo.start()
    yield echo
    await echo.stop()


class Recorder:
    def __init__(self) -> None:
        self.events: list[UpstreamEvent] = []
        self.changes: list[SessionChange] = []
        self.first = asyncio.Event()

    async def on_event(self, event: UpstreamEvent, received: float) -> None:
        self.events.append(event)
        self.first.set()

    async def on_change(self, change: SessionChange) -> None:
        self.changes.append(change)


async def _run(line: EchoLine, claim) -> tuple[Recorder, UpstreamLink]:
    upstream = Upstream(provider="custom", url=line.url, dialect="ga")
    rec = Recorder()
    link = UpstreamLink(upstream, RealtimeFace("ga", Agent()), structlog.get_logger(), rec.on_event, rec.on_change,
                        claim=claim)
    task = asyncio.create_task(link.run())
    await asyncio.wait_for(rec.first.wait(), 5.0)
    await link.close()
    await asyncio.wait_for(task, 5.0)
    return rec, link


async def test_a_claimed_session_opens_with_its_age_and_idle_frames_first(line: EchoLine):
    upstream = Upstream(provider="custom", url=line.url, dialect="ga")
    conn = await open_realtime(upstream)
    warm = WarmSession(conn, asyncio.get_running_loop().time() - 42.0)
    warm.frames.append(await conn.recv(decode=False))  # session.created, read while it was idle
    warm.frames.append(b'{"type":"session.updated","session":{"id":"sess_x"}}')
    warm.configured = b"{}"

    async def claim() -> WarmSession | None:
        return warm

    rec, _ = await _run(line, claim)
    opened = rec.changes[0]
    assert type(opened) is Opened and opened.configured and not opened.replacement
    assert 42.0 <= opened.age_s < 60.0
    assert [type(e) for e in rec.events[:2]] == [SessionCreated, SessionUpdated]
    assert len(line.sessions) == 1  # no other socket was opened


@pytest.mark.parametrize("outcome", ["none", "raises"])
async def test_without_a_warm_session_the_link_dials_out(line: EchoLine, outcome: str):
    async def claim() -> WarmSession | None:
        if outcome == "raises":
            raise RuntimeError("a bug in the pool")
        return None

    rec, _ = await _run(line, claim)
    assert rec.changes[0] == Opened()
    assert type(rec.events[0]) is SessionCreated and len(line.sessions) == 1
