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


class WsClient(asyncio.Protocol):
    """`on_text(payload)` for each text message, `on_close()` once when the connection is gone."""

    def __init__(self, host: str, path: str, on_text: Callable[[bytes], None], on_close: Callable[[], None]) -> None:
        self.on_text = on_text
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.close_code: int | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._key = base64.b64encode(os.urandom(16))
        self._request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: {self._key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
        self._buf = bytearray()  # the handshake answer, until it is complete
        self._parser = wf.FrameParser(False, self._frame)
        self._fragments: list[bytes] = []
        self._close_sent = False

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self._buf += data
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, rest = bytes(self._buf[:end]), bytes(self._buf[end + 4:])
            self._buf.clear()
            try:
                self._check_handshake(head)
            except HandshakeError as exc:
                self.opened.set_exception(exc)
                self.abort()
                return
            self.opened.set_result(None)
            if not rest:
                return
            data = rest
        try:
            self._parser.feed(data)
        except wf.ProtocolError as exc:
            self.close(exc.code)
            self._parser.stopped = True

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("connection lost during the handshake"))
        if not self.closed:
            self.closed = True
            self.on_close()

    # --- frames ----------------------------------------------------------------------------------

    def _check_handshake(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise HandshakeError(f"server answered {lines[0]!r}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if headers.get("sec-websocket-accept") != wf.accept_key(self._key):
            raise HandshakeError("bad Sec-WebSocket-Accept")

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode == wf.OP_TEXT or opcode == wf.OP_CONT:
            if not fin or self._fragments:
                self._fragments.append(payload)
                if not fin:
                    return
                payload, self._fragments = b"".join(self._fragments), []
            self.on_text(payload)
        elif opcode == wf.OP_PING:
            self._write(wf.OP_PONG, payload)
        elif opcode == wf.OP_CLOSE:
            self._parser.stopped = True
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.close(self.close_code if self.close_code not in (1005, 1006) else 1000)
            if self.transport is not None:
                self.transport.close()

    def _write(self, opcode: int, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(wf.frame(opcode, data, masked=True))

    # --- the API ---------------------------------------------------------------------------------

    def send_text(self, data: bytes) -> None:
        if not self._close_sent:
            self._write(wf.OP_TEXT, data)

    def close(self, code: int = 1000) -> None:
        """Send a close frame (once); the server answers and ends the connection."""
        if not self._close_sent:
            self._close_sent = True
            self._write(wf.OP_CLOSE, code.to_bytes(2, "big"))

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
