"""A few open, idle Realtime sessions per process, so that a call's first answer waits for no handshake.

`WarmPool` keeps `size` sessions of one upstream open in the background (`WARM_UPSTREAM_SESSIONS`). A call
claims one when its stream starts (`claim`) and configures it for its agent instead of dialling out; the
pool opens a replacement at once. Nothing is generated on an idle session (no `session.update`, no
`response.create`), so an idle session spends no tokens; its size is fixed, so no request can grow it.

Each idle session's frames are read by a small task (`WarmSession.watch`): what a session says while it
waits (`session.created`, beta's `conversation.created`) is kept for the call's face, which then sees the
session's first events as if it had opened it itself. An error event, more events than an idle session
sends, or a close makes it unusable: it is discarded (counted by reason) and replaced, never handed to a
call. A session is renewed once `max_age_s` old (a replacement opens first, so the pool has no gap), and
closed anyway `renew_grace_s` later; the call that claims one is told its age, so that its own renewal
before the server's session cap (SESSION_MAX_S) counts from the session's real start. Failed opens back
off exponentially (counted, logged), so a failing upstream never makes the pool spin.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from gateway.config import Upstream
from gateway.observability import metrics
from gateway.realtime.connection import UpstreamConnectError, open_realtime

log = structlog.get_logger("gateway.warm")

CLOSE_TIMEOUT_S = 1.0
MAX_IDLE_FRAMES = 8  # session.created (and beta's conversation.created): more is not an idle session
OPEN_PARALLEL = 4  # handshakes in flight at once while the pool fills
RENEW_GRACE_S = 60.0  # a session due for renewal stays claimable this long while its replacement opens
BACKOFF_S = 1.0  # after a round of failed opens: BACKOFF_S * 2**(n-1), at most MAX_BACKOFF_S
MAX_BACKOFF_S = 60.0


def event_type(raw: bytes | str) -> str | None:
    """The `type` of a server event, None when the frame is not a JSON object with one."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    kind = event.get("type") if type(event) is dict else None
    return kind if type(kind) is str else None


def error_code(raw: bytes | str) -> str | None:
    """`error.code` of an error event (for the log; bounded by the server's codes)."""
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
        code = orjson.loads(raw).get("error", {}).get("code")
        return code if type(code) is str else None
    return None


async def close_quietly(conn: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), CLOSE_TIMEOUT_S)


class WarmSession:
    """One open upstream session no call uses yet, and the frames it sent while it waited."""

    def __init__(self, conn: ClientConnection, opened_at: float) -> None:
        self.conn = conn
        self.opened_at = opened_at  # loop time, seconds
        self.frames: list[bytes] = []  # received while idle, in order: the call's face sees them first
        self.configured: bytes | None = None  # the session.update it was configured with (at a webhook)
        self.lost: str | None = None  # why it may not be used: closed, error, unexpected
        self.detail = ""  # for the log: the close code, or the error code
        self._watch: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        return self.lost is None and self.conn.protocol.state is State.OPEN

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.opened_at)

    def watch(self, on_lost: Callable[[WarmSession], None]) -> None:
        """Read its frames in the background until `unwatch`; `on_lost` is told when it became unusable."""
        self._watch = asyncio.create_task(self._read(on_lost), name="warm-session-watch")

    async def _read(self, on_lost: Callable[[WarmSession], None]) -> None:
        try:
            while True:
                raw = await self.conn.recv(decode=False)
                if event_type(raw) == "error":
                    self.lost, self.detail = "error", f"error event {error_code(raw) or '(no code)'}"
                    break
                if len(self.frames) >= MAX_IDLE_FRAMES:
                    self.lost, self.detail = "unexpected", f"more than {MAX_IDLE_FRAMES} events while idle"
                    break
                self.frames.append(raw)
        except ConnectionClosed as exc:
            code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "no close frame")
            self.lost, self.detail = "closed", f"code {code}" + (f", {reason}" if reason else "")
        on_lost(self)

    async def unwatch(self) -> bool:
        """Stop reading (no frame is lost: the next `recv` returns it); True: it is still usable."""
        task, self._watch = self._watch, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait([task])
        return self.usable

    async def close(self) -> None:
        await self.unwatch()
        await close_quietly(self.conn)


OpenSession = Callable[[Upstream], Awaitable[ClientConnection]]
Sleep = Callable[[float], Awaitable[Any]]


class WarmPool:
    """`size` open, idle sessions of `upstream`, refilled in the background and renewed at `max_age_s`."""

    def __init__(self, upstream: Upstream, size: int, max_age_s: float, *, open_session: OpenSession = open_realtime,
                 sleep: Sleep = asyncio.sleep, backoff_s: float = BACKOFF_S, max_backoff_s: float = MAX_BACKOFF_S,
                 renew_grace_s: float | None = None) -> None:
        self.upstream = upstream
        self.size = size
        self.max_age_s = max_age_s
        self.renew_grace_s = min(RENEW_GRACE_S, max_age_s / 2) if renew_grace_s is None else renew_grace_s
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.failures = 0  # rounds of opens that all failed, in a row
        self.stopped = False
        self._open = open_session
        self._sleep = sleep
        self._idle: list[WarmSession] = []  # oldest first
        self._wake = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()

    @property
    def idle(self) -> int:
        return len(self._idle)

    def matches(self, upstream: Upstream) -> bool:
        """The pool's sessions are for this upstream (URL, dialect, credentials)."""
        return upstream == self.upstream

    def start(self) -> None:
        self._keeper = asyncio.create_task(self._keep(), name="warm-upstream-pool")

    async def stop(self) -> None:
        """Close every idle session and stop refilling; returns once every socket is closed."""
        self.stopped = True
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        while self._idle:
            self._discard(self._idle.pop(), "shutdown")
        while self._closing:
            await asyncio.wait(list(self._closing))
        metrics.WARM_IDLE.set(0)

    async def claim(self, upstream: Upstream | None = None) -> WarmSession | None:
        """An open, idle session (the youngest: it has the most of its life left), taken out of the pool,
        its frames so far with it; None when none is idle (or `upstream` is not the pool's)."""
        if self.stopped or (upstream is not None and not self.matches(upstream)):
            return None
        self._wake.set()  # whatever happens, the pool refills
        now = self._loop.time()
        while self._idle:
            session = self._idle.pop()
            metrics.WARM_IDLE.set(len(self._idle))
            try:
                usable = await session.unwatch()
            except asyncio.CancelledError:  # the call ended while claiming: the session goes with it
                self._close_later(session)
                raise
            if usable and session.age_s(now) < self.max_age_s + self.renew_grace_s:
                metrics.WARM_CLAIMS.labels("hit").inc()
                return session
            self._discard(session, (session.lost or "closed") if not usable else "expired")
        metrics.WARM_CLAIMS.labels("miss").inc()
        return None

    # --- keeping it full -----------------------------------------------------------------------

    async def _keep(self) -> None:
        while not self.stopped:
            try:
                await self._keep_once()
            except Exception:  # a bug here must not end the pool for the process's life, nor spin
                self.failures += 1
                log.exception("warm_pool_failed")
                await self._sleep(min(self.max_backoff_s, self.backoff_s * 2 ** (self.failures - 1)))

    async def _keep_once(self) -> None:
        """One look at the pool: drop what is past its grace, open what is missing, or wait."""
        self._wake.clear()
        now = self._loop.time()
        for session in [s for s in self._idle if s.age_s(now) >= self.max_age_s + self.renew_grace_s]:
            self._idle.remove(session)
            self._discard(session, "expired")
        fresh = sum(1 for s in self._idle if s.age_s(now) < self.max_age_s)
        wanted = self.size - fresh
        if wanted <= 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_due(now))
            return
        results = await asyncio.gather(*(self._open_one() for _ in range(min(wanted, OPEN_PARALLEL))))
        if any(results):
            self.failures = 0
            return
        self.failures += 1
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (self.failures - 1))
        log.warning("warm_pool_backing_off", failures_in_a_row=self.failures, retry_in_s=round(delay, 3))
        await self._sleep(delay)

    def _next_due(self, now: float) -> float | None:
        """Seconds until an idle session is due for renewal (or past its grace); None: none idle."""
        dues = [s.opened_at + self.max_age_s + (self.renew_grace_s if s.age_s(now) >= self.max_age_s else 0.0)
                for s in self._idle]
        return max(0.0, min(dues) - now) if dues else None

    async def _open_one(self) -> bool:
        try:
            conn = await self._open(self.upstream)
        except UpstreamConnectError as exc:
            metrics.WARM_OPEN_FAILURES.inc()
            log.warning("warm_session_open_failed", error=str(exc), status=exc.status)
            return False
        session = WarmSession(conn, self._loop.time())
        if self.stopped:
            await close_quietly(conn)
            return False
        self._idle.append(session)
        session.watch(self._lost)
        # A fresh session is in: one due for renewal may go now (oldest first), the pool stays full.
        now = self._loop.time()
        while len(self._idle) > self.size and self._idle[0].age_s(now) >= self.max_age_s:
            self._discard(self._idle.pop(0), "renewed")
        metrics.WARM_IDLE.set(len(self._idle))
        return True

    def _lost(self, session: WarmSession) -> None:
        """An idle session's reader saw it become unusable (a claim that is unwatching it sees that too)."""
        if session in self._idle:
            self._idle.remove(session)
            self._discard(session, session.lost or "closed")
            self._wake.set()

    def _discard(self, session: WarmSession, reason: str) -> None:
        metrics.WARM_DISCARDED.labels(reason).inc()
        metrics.WARM_IDLE.set(len(self._idle))
        level = log.info if reason in ("renewed", "shutdown") else log.warning
        level("warm_session_discarded", reason=reason, detail=session.detail or None,
              age_s=round(session.age_s(self._loop.time()), 1))
        self._close_later(session)

    def _close_later(self, session: WarmSession) -> None:
        task = asyncio.create_task(session.close(), name="warm-session-close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
