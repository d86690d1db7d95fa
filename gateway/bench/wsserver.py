"""A minimal WebSocket server connection (RFC 6455) for the bench's echo line: text, ping, close.

The counterpart of `gateway.bench.wsclient`: an `asyncio.Protocol` that answers the upgrade, then hands
each text message to `on_text` synchronously, and writes each frame with one `transport.write`. It also
offers the few awaitables of aiohttp's `WebSocketResponse` that `gateway.sim.echo.EchoSession` uses
(`send_frame`, `close`, `closed`, `close_code`), so the project's echo line runs on it unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gateway.bench import wsframe as wf
from gateway.sim.echo import HeaderDict

CLOSE_WAIT_S = 5.0


class WsServerConn(wf.Endpoint):
    """One accepted connection. `on_open(conn)` runs once the upgrade request is read (`conn.request` has
    its `path`, case-insensitive `headers` and `query`) and returns False to refuse it (404); it sets
    `on_text(payload)` and `on_close()`, and must not send before it returns."""

    def __init__(self, on_open: Callable[[WsServerConn], bool]) -> None:
        super().__init__(lambda payload: None)
        self.on_open = on_open
        self.on_close: Callable[[], None] = lambda: None
        self.request: Any = None
        self.open = False
        self._gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.open:
            try:
                got = self._take_head(data)
            except wf.ProtocolError:
                self._refuse(431, "Request Header Fields Too Large")
                return
            if got is None:
                return
            head, data = got
            if not self._upgrade(head) or not data:
                return
        self._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = 1006
        if not self._gone.done():
            self._gone.set_result(None)
        if not self.closed:
            self.closed = True
            if self.open:
                self.on_close()

    # --- handshake -------------------------------------------------------------------------------

    def _upgrade(self, head: bytes) -> bool:
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        target = rest.rpartition(" ")[0]
        headers = HeaderDict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
        key = headers.get("sec-websocket-key")
        if method != "GET" or "websocket" not in headers.get("upgrade", "").lower() or not key:
            self._refuse(426, "Upgrade Required")
            return False
        url = urlsplit(target)
        self.request = SimpleNamespace(path=url.path, headers=headers, query=dict(parse_qsl(url.query)))
        if not self.on_open(self):
            self._refuse(404, "Not Found")
            return False
        answer = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Accept: {wf.accept_key(key.encode())}\r\n")
        if "realtime" in (p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")):
            answer += "Sec-WebSocket-Protocol: realtime\r\n"
        self.open = True
        assert self.transport is not None
        self.transport.write(answer.encode() + b"\r\n")
        return True

    def _refuse(self, status: int, reason: str) -> None:
        assert self.transport is not None
        self.transport.write(f"HTTP/1.1 {status} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        self._end()

    # --- the API ---------------------------------------------------------------------------------

    async def send_frame(self, data: bytes, msg_type: Any = None) -> None:
        """aiohttp's `WebSocketResponse.send_frame`, for text (the only kind the echo line sends)."""
        if self._close_sent or self.closed:
            raise ConnectionError("the WebSocket is closing")
        self._write(wf.OP_TEXT, data)

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        """Close with `code`; wait (bounded) for the peer to answer and the connection to end."""
        if self.close_code is None:
            self.close_code = code
        self._send_close(code, message)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._gone), CLOSE_WAIT_S)
        if self.transport is not None:
            self.transport.abort()
        return True

    async def wait_closed(self) -> None:
        await asyncio.shield(self._gone)
