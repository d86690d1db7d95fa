"""The upstream side of one call: one Realtime session at a time, replaced when the call asks.

`UpstreamLink` owns the Realtime socket. `run` is the call's upstream task: it opens the session
(bounded retries with backoff), decodes its frames with the call's `RealtimeFace` and hands each typed
event to `on_event`; it tells `on_change` when a session opened, closed, or could not be opened. When
the call asks for a new session (`request_switch`, from a `Reconnect` action) it closes the old socket,
waits the delay the call chose, opens a new one and says so. It decides nothing about the call.

With a `claim` (the warm pool, `http/warm.py`), a session is first asked of it: a claimed session is
already open (its `age_s` is told, so the call renews it in time) and may already be configured for the
call (`configured`: its webhook did that); the frames it received while it waited are handed to the
call's face first, as if they had just arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from gateway.config import Upstream
from gateway.core.events import SessionUpdated, UpstreamEvent
from gateway.observability import metrics
from gateway.realtime.connection import UpstreamConnectError, open_realtime_with_retries, send_text_now
from gateway.realtime.face import RealtimeFace
from gateway.realtime.pool import WarmSession

UPSTREAM_CLOSE_TIMEOUT_S = 1.0
STALL_BYTES = 16 * 1024  # a send buffer holding more than this is not draining (see core.watch)


@dataclass(frozen=True)
class Opened:
    """A session is open; `replacement`: it replaces one the call asked to switch (`reason`). A warm one
    (claimed, not dialled) is `age_s` old, and `configured` when its webhook sent our session.update."""

    replacement: bool = False
    reason: str = ""
    detail: str = ""
    configured: bool = False
    age_s: float = 0.0


@dataclass(frozen=True)
class Closed:
    """The session closed without being asked to."""

    code: int | None
    reason: str


@dataclass(frozen=True)
class Failed:
    """No session could be opened, or the upstream task broke."""

    detail: str


SessionChange = Opened | Closed | Failed


def backed_up(transport: Any) -> bool:
    """More than STALL_BYTES wait in this transport's send buffer (the peer is not keeping up)."""
    if transport is None or transport.is_closing():
        return False
    return bool(transport.get_write_buffer_size() > STALL_BYTES)


async def close_quietly(conn: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), UPSTREAM_CLOSE_TIMEOUT_S)


class UpstreamLink:
    def __init__(
        self,
        upstream: Upstream,
        face: RealtimeFace,
        log: Any,
        on_event: Callable[[UpstreamEvent, float], Awaitable[None]],
        on_change: Callable[[SessionChange], Awaitable[None]],
        claim: Callable[[], Awaitable[WarmSession | None]] | None = None,
    ) -> None:
        self.upstream = upstream
        self.face = face
        self.log = log
        self.on_event = on_event
        self.on_change = on_change
        self.claim = claim  # a warm session instead of a handshake, when there is one
        self._warm: Opened = Opened()  # how the session `_open` returned was had
        self._pending: list[bytes] = []  # a warm session's frames, decoded before its socket's
        self.conn: ClientConnection | None = None  # the current session; None while switching
        self.ready = False  # the first session applied our configuration (session.updated)
        self.failure_counted = False  # gateway_upstream_connect_failures_total counted this call
        self._switch: tuple[str, str, float] | None = None  # (reason, detail, delay): asked for a new session
        self._opening = 0.0
        self._closing: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()

    # --- what the call's owner asks ------------------------------------------------------------

    async def send(self, frame: bytes) -> None:
        conn = self.conn
        if conn is not None and not send_text_now(conn, frame):
            with contextlib.suppress(ConnectionClosed):
                await conn.send(frame, text=True)

    def backed_up(self) -> bool:
        conn = self.conn
        return conn is not None and backed_up(conn.transport)

    def request_switch(self, reason: str, detail: str, delay_s: float) -> None:
        """Replace the session: the pump stops at once (from inside it) or when the socket closes (from
        outside it: closed here, politely, in the background; an `abort` right after makes it immediate)."""
        if self._switch is not None:
            return
        self._switch = (reason, detail, delay_s)
        conn = self.conn
        if conn is not None and asyncio.current_task() is not self._pump_task:
            task = asyncio.create_task(close_quietly(conn), name="upstream-close")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def abort(self) -> None:
        """Drop the socket without a closing handshake: its peer stopped reading."""
        conn = self.conn
        if conn is not None:
            conn.transport.abort()

    async def close(self) -> None:
        if self.conn is not None:
            await close_quietly(self.conn)
        for task in list(self._closing):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- the upstream task ---------------------------------------------------------------------

    _pump_task: asyncio.Task[Any] | None = None

    async def run(self) -> None:
        self._pump_task = asyncio.current_task()
        try:
            conn = await self._open(first=True)
            if conn is None:
                return
            await self.on_change(self._warm)
            while True:
                code, reason = await self._pump(conn)
                if self._switch is None:
                    await self.on_change(Closed(code, reason))
                    if self._switch is None:
                        return
                why, detail, delay = self._switch
                self.conn = None
                await close_quietly(conn)
                metrics.UPSTREAM_RECONNECTS.labels(why).inc()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._switch = None
                conn = await self._open(first=False)
                if conn is None:
                    return
                await self.on_change(Opened(replacement=True, reason=why, detail=detail, age_s=self._warm.age_s))
        except Exception:
            self.log.exception("upstream_session_failed")
            await self.on_change(Failed("internal error on the upstream side"))

    async def _open(self, *, first: bool) -> ClientConnection | None:
        upstream = self.upstream

        def retrying(attempt: int, exc: UpstreamConnectError, delay: float) -> None:
            metrics.UPSTREAM_CONNECT_RETRIES.labels(upstream.provider).inc()
            self.log.warning("upstream_connect_retry", attempt=attempt, error=str(exc), status=exc.status,
                             retry_in_s=round(delay, 3))

        if first:
            self._opening = time.perf_counter()
        self._warm = Opened()
        if self.claim is not None:
            try:
                warm = await self.claim()
            except Exception:  # the pool's trouble is no reason to fail the call: dial out
                self.log.exception("upstream_warm_claim_failed")
                warm = None
            if warm is not None:
                self._warm = Opened(configured=first and warm.configured is not None,
                                    age_s=warm.age_s(self._loop.time()))
                self._pending = warm.frames
                self.log.info("upstream_warm_session", age_s=round(self._warm.age_s, 1),
                              configured=self._warm.configured, reconnect=not first)
                self.conn = warm.conn
                return warm.conn
        try:
            conn = await open_realtime_with_retries(upstream, retrying)
        except UpstreamConnectError as exc:
            metrics.UPSTREAM_CONNECT_FAILURES.labels(upstream.provider).inc()
            self.failure_counted = True
            self.log.error("upstream_connect_failed", error=str(exc), status=exc.status, attempts=exc.attempts,
                           reconnect=not first)
            await self.on_change(Failed(str(exc) if first else f"reconnect failed: {exc}"))
            return None
        self.conn = conn
        return conn

    async def _pump(self, conn: ClientConnection) -> tuple[int | None, str]:
        """Hand the session's events over until it closes or the call asks for a new one."""
        loop = self._loop
        decode = self.face.decode
        on_event = self.on_event
        pending, self._pending = self._pending, []
        try:
            recv = conn.recv
            while True:
                # orjson parses bytes: no str decode per event; a warm session's first frames first
                raw = pending.pop(0) if pending else await recv(decode=False)
                received = loop.time() * 1000.0
                event = decode(raw)
                if type(event) is SessionUpdated and not self.ready:
                    self.ready = True  # connect time = handshake + our configuration applied
                    metrics.UPSTREAM_CONNECT.labels(self.upstream.provider).observe(time.perf_counter() - self._opening)
                await on_event(event, received)
                if self._switch is not None:  # this session is done with: what it still sends is not for us
                    return None, "replaced"
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "no close frame")
