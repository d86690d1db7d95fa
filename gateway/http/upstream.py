"""The upstream side of one call: a Realtime session at a time, replaced when it fails or grows old.

`UpstreamLink.run` is the call's upstream task. It opens the session (bounded retries with backoff),
pumps its events into the `Call`, and when the Call asks for a new session (`Reconnect`: the socket
dropped, a server_error, session_expired, a stalled socket, or the renewal before the duration cap) it
closes the old socket, opens a new one and lets the Call restore the conversation on it.

`UpstreamLink.monitor` is the call's one housekeeping task, waking about once a second: it gives up
on a socket whose send buffer stops draining (a peer that stopped reading would otherwise pin the
call, and its memory, until the duration cap) and renews the session at a quiet moment between turns
once it is SESSION_MAX_S old.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from gateway.core.events import UP_SESSION_UPDATED
from gateway.observability import metrics
from gateway.realtime.connection import UpstreamConnectError, open_realtime_with_retries
from gateway.realtime.events import kind_of

if TYPE_CHECKING:
    from gateway.http.media import MediaSession

UPSTREAM_CLOSE_TIMEOUT_S = 1.0
STALL_BYTES = 16 * 1024  # a send buffer holding more than this, continuously, is not draining
RECYCLE_POLL_S = 0.2  # once a renewal is due: how often to look for a quiet moment


def backed_up(transport: Any) -> bool:
    """More than STALL_BYTES wait in this transport's send buffer (the peer is not keeping up)."""
    if transport is None or transport.is_closing():
        return False
    return bool(transport.get_write_buffer_size() > STALL_BYTES)


async def close_quietly(conn: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), UPSTREAM_CLOSE_TIMEOUT_S)


class UpstreamLink:
    def __init__(self, session: MediaSession) -> None:
        self.session = session
        self.switch: tuple[str, str] | None = None  # (reason, detail): the Call asked for a new session
        self.opened_at = 0.0  # loop time the current session opened

    def request_switch(self, reason: str, detail: str) -> None:
        if self.switch is None:
            self.switch = (reason, detail)

    # --- the upstream task ---------------------------------------------------------------------

    async def run(self) -> None:
        s = self.session
        call = s.call
        try:
            conn = await self._open(first=True)
            if conn is None:
                return
            await s.perform(call.upstream_opened(s.now()))
            while True:
                code, reason = await self._pump(conn)
                if self.switch is None:
                    await s.perform(call.upstream_closed(code, reason, s.now()))
                    if self.switch is None:
                        return
                why, detail = self.switch
                s.upstream = None
                await close_quietly(conn)
                metrics.UPSTREAM_RECONNECTS.labels(why).inc()
                if why != "recycle" and call.stats.reconnects > 1:  # the first reconnect is immediate
                    await asyncio.sleep(s.state.upstream.retry_backoff_s * 2 ** (call.stats.reconnects - 2))
                self.switch = None
                conn = await self._open(first=False)
                if conn is None:
                    return
                s.log.info("upstream_reconnected", reason=why, detail=detail, reconnects=call.stats.reconnects,
                           recycles=call.stats.recycles)
                await s.perform(call.upstream_reopened(s.now()))
        except Exception:
            s.log.exception("upstream_session_failed")
            await s.hangup("upstream_error", "internal error on the upstream side")

    async def _open(self, *, first: bool) -> ClientConnection | None:
        s = self.session
        upstream = s.state.upstream

        def retrying(attempt: int, exc: UpstreamConnectError, delay: float) -> None:
            metrics.UPSTREAM_CONNECT_RETRIES.labels(upstream.provider).inc()
            s.log.warning("upstream_connect_retry", attempt=attempt, error=str(exc), status=exc.status,
                          retry_in_s=round(delay, 3))

        if first:
            s.upstream_opening = time.perf_counter()
        try:
            conn = await open_realtime_with_retries(upstream, retrying)
        except UpstreamConnectError as exc:
            metrics.UPSTREAM_CONNECT_FAILURES.labels(upstream.provider).inc()
            s.log.error("upstream_connect_failed", error=str(exc), status=exc.status, attempts=exc.attempts,
                        reconnect=not first)
            await s.hangup("upstream_error", str(exc) if first else f"reconnect failed: {exc}")
            return None
        s.upstream = conn
        self.opened_at = s.loop.time()
        return conn

    async def _pump(self, conn: ClientConnection) -> tuple[int | None, str]:
        """Feed the session's events to the Call until it closes or the Call asks for a new one."""
        s = self.session
        call = s.call
        loop = s.loop
        perform = s.perform
        try:
            recv = conn.recv
            while True:
                raw = await recv(decode=False)  # orjson parses bytes: no str decode per event
                received = loop.time() * 1000.0
                try:
                    event = orjson.loads(raw)
                    event_type = event.get("type")
                except (orjson.JSONDecodeError, AttributeError):
                    metrics.UPSTREAM_ERRORS.labels("invalid_json").inc()
                    s.log.warning("upstream_event_unreadable", size=len(raw))
                    continue
                kind = kind_of(event_type)
                if kind is UP_SESSION_UPDATED and not s.session_ready:
                    s.session_ready = True  # connect time = handshake + our configuration applied
                    metrics.UPSTREAM_CONNECT.labels(s.state.upstream.provider).observe(
                        time.perf_counter() - (s.upstream_opening or 0.0))
                actions = call.upstream_event(kind, event, received)
                if actions:
                    await perform(actions, received)
                if self.switch is not None:  # this session is done with: what it still sends is not for us
                    return None, "replaced"
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "no close frame")

    # --- the housekeeping task -----------------------------------------------------------------

    async def monitor(self) -> None:
        s = self.session
        call = s.call
        settings = s.state.settings
        stall_s = settings.send_stall_timeout_s
        interval = min(1.0, stall_s / 2)
        carrier_since: float | None = None
        upstream_since: float | None = None
        due = False
        while True:
            await asyncio.sleep(RECYCLE_POLL_S if due else interval)
            now = s.loop.time()
            if backed_up(s.carrier_transport):
                carrier_since = carrier_since or now
                if now - carrier_since >= stall_s:
                    s.carrier_stalled(now - carrier_since)
                    return
            else:
                carrier_since = None
            conn = s.upstream
            if conn is None or self.switch is not None:
                upstream_since, due = None, False
                continue
            if backed_up(conn.transport):
                upstream_since = upstream_since or now
                if now - upstream_since >= stall_s:
                    metrics.SEND_STALLS.labels("upstream").inc()
                    detail = f"upstream stopped reading (send stalled for {now - upstream_since:.0f} s)"
                    await s.perform(call.upstream_lost("stalled", detail, now * 1000.0))
                    conn.transport.abort()
                    upstream_since = None
                    continue
            else:
                upstream_since = None
            due = bool(settings.session_max_s) and now - self.opened_at >= settings.session_max_s
            if due and (renew := call.recycle(now * 1000.0)):  # only at a quiet moment between turns
                await s.perform(renew)  # asks for the switch
                await close_quietly(conn)  # ends the pump
                due = False
