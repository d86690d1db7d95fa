"""A minimal WebSocket client (RFC 6455) for the load callers: text frames, ping, close. Nothing else.

The simulated callers must cost less than the target they load, and a full client spends most of its
time in futures and tasks per message. This one is an `asyncio.Protocol`: a frame in is a callback,
a frame out is one `transport.write`, all synchronous. Frames are masked as a client must.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable

from gateway.bench import wsframe as wf


class HandshakeError(Exception):
    pass


class WsClient(wf.Endpoint):
    """`on_text(payload)` for each text message, `on_close()` once when the connection is gone."""

    masks = True

    def __init__(self, host: str, path: str, on_text: Callable[[bytes], None], on_close: Callable[[], None]) -> None:
        super().__init__(on_text)
        self.on_close = on_close
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._key = base64.b64encode(os.urandom(16))
        self._request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: {self._key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            try:
                got = self._take_head(data)
                if got is None:
                    return
                head, data = got
                self._check_handshake(head)
            except (HandshakeError, wf.ProtocolError) as exc:
                self.opened.set_exception(HandshakeError(str(exc)))
                self.abort()
                return
            self.opened.set_result(None)
            if not data:
                return
        self._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost during the handshake"))
        if not self.closed:
            self.closed = True
            self.on_close()

    def _check_handshake(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise HandshakeError(f"server answered {lines[0]!r}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if headers.get("sec-websocket-accept") != wf.accept_key(self._key):
            raise HandshakeError("bad Sec-WebSocket-Accept")

    # --- the API (and send_text) -----------------------------------------------------------------

    def close(self, code: int = 1000) -> None:
        """Send a close frame (once); the server answers and ends the connection."""
        self._send_close(code)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect(url: str, on_text: Callable[[bytes], None], on_close: Callable[[], None],
                  timeout_s: float = 10.0) -> WsClient:
    """Open `ws://host:port/path`."""
    if not url.startswith("ws://"):
        raise ValueError(f"only ws:// URLs on loopback are supported, got {url!r}")
    hostport, _, path = url[len("ws://"):].partition("/")
    host, _, port = hostport.rpartition(":")
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout_s):
        _, proto = await loop.create_connection(lambda: WsClient(hostport, "/" + path, on_text, on_close),
                                                host, int(port))
        await proto.opened
    return proto
