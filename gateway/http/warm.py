"""Warm upstream sessions for calls: claimed when a stream starts, or already configured at its webhook.

`WarmSessions` holds the process's `WarmPool` and the sessions parked for calls. A call's upstream link
asks `claimer(...)` for its session before dialling out: the session parked for its CallSid if there is
one (only once, and only when it was configured exactly as this stream's face would configure it), else
one from the pool, else None (the link dials out as before).

Parking: where the webhook and the stream reach the same process, a *signed* webhook (the carrier's
signature verified: a stranger cannot make the gateway open sessions) claims a session from the pool at
once, sends it the agent's `session.update` for the codec the carrier will stream (its preferred one) and
waits for `session.updated` in the background; the stream then finds a configured session and the call
skips that round trip too. A parked session is bound to its CallSid, kept for the stream token's lifetime
and closed then if no stream claimed it (counted); at most as many are parked as the pool holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from websockets.exceptions import ConnectionClosed

from gateway.agent_settings import Agent
from gateway.carriers.base import Carrier
from gateway.config import Upstream
from gateway.core.events import ConfigureSession
from gateway.observability import metrics
from gateway.realtime.face import RealtimeFace
from gateway.realtime.pool import MAX_IDLE_FRAMES, WarmPool, WarmSession, error_code, event_type

log = structlog.get_logger("gateway.warm")

PREPARE_TIMEOUT_S = 5.0  # for session.updated after the webhook's session.update
EXPIRY_MARGIN_S = 1.0  # a token is valid until the whole second after its lifetime (stream_tokens.mint)

Claim = Callable[[], Awaitable[WarmSession | None]]


class NotConfigured(Exception):
    """The parked session answered its session.update with something else than session.updated."""


@dataclass(eq=False)
class Parked:
    frame: bytes  # the session.update sent
    task: asyncio.Task[WarmSession | None] | None = None  # the claim and configuration
    timer: asyncio.TimerHandle | None = None  # the stream token's expiry


class WarmSessions:
    def __init__(self, pool: WarmPool, *, max_parked: int | None = None,
                 prepare_timeout_s: float = PREPARE_TIMEOUT_S) -> None:
        self.pool = pool
        self.max_parked = pool.size if max_parked is None else max_parked
        self.prepare_timeout_s = prepare_timeout_s
        self.parked: dict[str, Parked] = {}  # CallSid -> its session, configured at its webhook
        self._preparing: set[asyncio.Task[WarmSession | None]] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()

    # --- at the webhook ------------------------------------------------------------------------

    def park_for(self, call_id: str, carrier: Carrier, agent: Agent, ttl_s: float) -> None:
        """A signed webhook answered this call: configure a warm session for its stream, in the codec the
        carrier's answer names (`Carrier.answer_codec`), kept for `ttl_s` (the stream token's lifetime)."""
        capabilities = carrier.capabilities
        try:
            face = RealtimeFace(self.pool.upstream.dialect, agent, carrier.answer_codec,
                                send_dtmf=bool(capabilities.send_dtmf))
        except ValueError:  # a codec only a converting face takes: nothing to configure ahead
            return
        frame = face.encode(ConfigureSession())
        assert type(frame) is bytes
        self.park(call_id, frame, ttl_s)

    def park(self, call_id: str, frame: bytes, ttl_s: float) -> None:
        existing = self.parked.get(call_id)
        if existing is not None:  # the carrier retried the webhook: the same session, for the new token
            self._arm(call_id, existing, ttl_s)
            return
        if len(self.parked) >= self.max_parked:
            metrics.WARM_PARKED.labels("full").inc()
            return
        entry = Parked(frame)
        self.parked[call_id] = entry
        entry.task = asyncio.create_task(self._prepare(call_id, entry), name="warm-session-park")
        self._preparing.add(entry.task)
        entry.task.add_done_callback(self._preparing.discard)
        self._arm(call_id, entry, ttl_s)

    def _arm(self, call_id: str, entry: Parked, ttl_s: float) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
        entry.timer = self._loop.call_later(ttl_s + EXPIRY_MARGIN_S, self._expire, call_id, entry)

    async def _prepare(self, call_id: str, entry: Parked) -> WarmSession | None:
        session = await self.pool.claim()
        if session is None:
            metrics.WARM_PARKED.labels("unavailable").inc()
            self._forget(call_id, entry)
            return None
        try:
            await session.conn.send(entry.frame, text=True)
            async with asyncio.timeout(self.prepare_timeout_s):
                while True:
                    raw = await session.conn.recv(decode=False)
                    kind = event_type(raw)
                    if kind == "error":
                        raise NotConfigured(f"error event {error_code(raw)}")
                    if len(session.frames) >= MAX_IDLE_FRAMES:
                        raise NotConfigured("unexpected events")
                    session.frames.append(raw)
                    if kind == "session.updated":
                        break
        except (TimeoutError, ConnectionClosed, NotConfigured) as exc:
            why = (f"no session.updated within {self.prepare_timeout_s:g} s" if isinstance(exc, TimeoutError)
                   else "closed" if isinstance(exc, ConnectionClosed) else str(exc))
            metrics.WARM_PARKED.labels("failed").inc()
            log.warning("warm_session_not_configured", call_sid=call_id, reason=why)
            self._forget(call_id, entry)
            self._close_later(session)
            return None
        except BaseException:  # cancelled (its token expired, or shutdown)
            self._close_later(session)
            raise
        session.configured = entry.frame
        session.watch(lambda s: self._lost(call_id, entry, s))
        metrics.WARM_PARKED.labels("parked").inc()
        return session

    def _expire(self, call_id: str, entry: Parked) -> None:
        """No stream claimed the parked session within its token's lifetime: closed, counted."""
        if self.parked.get(call_id) is not entry:
            return
        del self.parked[call_id]
        metrics.WARM_PARKED.labels("expired").inc()
        log.info("warm_session_expired", call_sid=call_id, note="no stream claimed it within the stream token's "
                 "lifetime: closed")
        self._dispose(entry)

    def _lost(self, call_id: str, entry: Parked, session: WarmSession) -> None:
        """The upstream closed a parked session (or sent an error): it is no use to its stream."""
        if self.parked.get(call_id) is not entry:
            return  # being taken by its stream, which sees it is unusable
        self._forget(call_id, entry)
        metrics.WARM_PARKED.labels("lost").inc()
        log.warning("warm_session_lost", call_sid=call_id, reason=session.lost, detail=session.detail)
        self._close_later(session)

    def _forget(self, call_id: str, entry: Parked) -> None:
        if self.parked.get(call_id) is entry:
            del self.parked[call_id]
        if entry.timer is not None:
            entry.timer.cancel()

    # --- at the stream -------------------------------------------------------------------------

    async def take(self, call_id: str, frame: bytes) -> WarmSession | None:
        """The session parked for this call, once, if it is usable and was configured with `frame`."""
        entry = self.parked.pop(call_id, None)
        if entry is None or entry.task is None:
            return None
        if entry.timer is not None:
            entry.timer.cancel()
        try:
            session = await asyncio.shield(entry.task)  # still configuring when the stream came first
        except asyncio.CancelledError:
            if not entry.task.done():  # the call ended while waiting: the session goes with it
                self._dispose(entry)
            raise
        except Exception:
            log.exception("warm_session_park_failed")
            return None
        if session is None:
            return None
        if not await session.unwatch():
            metrics.WARM_PARKED.labels("lost").inc()
            log.warning("warm_session_lost", reason=session.lost, detail=session.detail)
            self._close_later(session)
            return None
        if session.configured != frame:  # another agent, codec or tool set than the webhook foresaw
            metrics.WARM_PARKED.labels("mismatch").inc()
            log.info("warm_session_mismatch", note="the stream needs another configuration: not used")
            self._close_later(session)
            return None
        metrics.WARM_PARKED.labels("claimed").inc()
        return session

    def claimer(self, call_id: str, upstream: Upstream, face: RealtimeFace) -> Claim | None:
        """What a call's upstream link asks before dialling out: first its parked session (configured as
        `face` would configure it), then the pool; None when the call's upstream is not the pool's."""
        if not self.pool.matches(upstream):
            return None
        frame = face.encode(ConfigureSession())
        first = True

        async def claim() -> WarmSession | None:
            nonlocal first
            if first:
                first = False
                session = await self.take(call_id, frame) if type(frame) is bytes else None
                if session is not None:
                    return session
            return await self.pool.claim(upstream)

        return claim

    # --- shutdown ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the parked sessions and the pool; returns once every socket is closed."""
        for entry in list(self.parked.values()):
            if entry.timer is not None:
                entry.timer.cancel()
            self._dispose(entry)
        self.parked.clear()
        if self._preparing:
            await asyncio.wait(list(self._preparing))
        await self.pool.stop()
        while self._closing:
            await asyncio.wait(list(self._closing))

    def _dispose(self, entry: Parked) -> None:
        """Close a parked entry's session, whether it is configured yet or not."""
        task = entry.task
        if task is None:
            return
        if not task.done():
            task.cancel()  # _prepare closes what it claimed
            return
        with contextlib.suppress(asyncio.CancelledError):
            session = task.result() if task.exception() is None else None
            if session is not None:
                self._close_later(session)

    def _close_later(self, session: WarmSession) -> None:
        task = asyncio.create_task(session.close(), name="warm-session-close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
