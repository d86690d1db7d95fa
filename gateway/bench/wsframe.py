"""WebSocket framing (RFC 6455) for the bench's lean client and server: text, ping/pong, close.

The simulated peers must cost far less than the target they load, and a full WebSocket library spends
most of its time in futures and tasks per message. These are the parts both ends share: building one
frame as one `bytes`, and a parser that hands each complete frame to a callback, synchronously.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
from collections.abc import Callable

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
MAX_MESSAGE = 1 << 20  # nothing the bench sends is near this
MAX_HANDSHAKE = 16 * 1024


class ProtocolError(Exception):
    """The peer broke the framing rules; `code` is the close code to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def accept_key(key: bytes) -> str:
    """The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()


def _mask_python(mask: bytes, data: bytearray) -> None:
    n = len(data)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    data[:] = (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")


try:  # aiohttp's own C masking, when this aiohttp has it where we expect it
    from aiohttp._websocket.helpers import websocket_mask as mask_in_place
except ImportError:  # pragma: no cover - depends on the aiohttp version
    mask_in_place = _mask_python


def frame(opcode: int, data: bytes, masked: bool) -> bytes:
    """One final frame; a client's frames are masked, a server's are not."""
    n = len(data)
    bit = 0x80 if masked else 0
    if n < 126:
        head = bytes((0x80 | opcode, bit | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, bit | 127)) + n.to_bytes(8, "big")
    if not masked:
        return head + data
    mask = random.randbytes(4)
    payload = bytearray(data)
    mask_in_place(mask, payload)
    return head + mask + payload


class FrameParser:
    """Feed it bytes; it calls `on_frame(fin, opcode, payload)` for every complete frame, in order
    (the payload is a bytearray the callback may keep).

    `masked`: whether the peer must mask (it is a client). Raises `ProtocolError` on a frame that breaks
    that rule or is too large; the caller closes the connection.
    """

    def __init__(self, masked: bool, on_frame: Callable[[int, int, bytes], None]) -> None:
        self.masked = masked
        self.on_frame = on_frame
        self.stopped = False  # set by the owner to drop what follows (after a close)
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        if not self._buf and self._one(data):
            return
        buf = self._buf
        buf += data
        pos, end = 0, len(buf)
        want_mask = 0x80 if self.masked else 0
        while end - pos >= 2 and not self.stopped:
            b0, b1 = buf[pos], buf[pos + 1]
            n, head = b1 & 0x7F, 2
            if n == 126:
                if end - pos < 4:
                    break
                n, head = int.from_bytes(buf[pos + 2:pos + 4], "big"), 4
            elif n == 127:
                if end - pos < 10:
                    break
                n, head = int.from_bytes(buf[pos + 2:pos + 10], "big"), 10
            if b1 & 0x80 != want_mask:
                raise ProtocolError(1002, "a client must mask its frames" if self.masked else "a server must not mask")
            if n > MAX_MESSAGE:
                raise ProtocolError(1009, f"frame of {n} bytes")
            key_len = 4 if want_mask else 0
            if end - pos < head + key_len + n:
                break
            start = pos + head + key_len
            payload = bytearray(buf[start:start + n])
            if want_mask:
                mask_in_place(bytes(buf[pos + head:start]), payload)
            pos = start + n
            self.on_frame(b0 & 0x80, b0 & 0x0F, payload)
        del buf[:pos]

    def _one(self, data: bytes) -> bool:
        """The common case, one whole frame (under 64 KiB) in one read: handled without the buffer."""
        if len(data) < 2:
            return False
        b1 = data[1]
        size, head = b1 & 0x7F, 2
        if size == 126:
            size, head = int.from_bytes(data[2:4], "big"), 4
        elif size == 127:
            return False
        masked = b1 & 0x80
        start = head + 4 if masked else head
        if start + size != len(data) or bool(masked) != self.masked:
            return False  # part of a frame, several, or a rule broken: the general path sorts it out
        payload = bytearray(data[start:])
        if masked:
            mask_in_place(data[head:start], payload)
        self.on_frame(data[0] & 0x80, data[0] & 0x0F, payload)
        return True


class Endpoint(asyncio.Protocol):
    """What both ends of a bench connection do once the upgrade is done: reassemble text messages for
    `on_text`, answer pings, answer a close (once) and end the connection, fail it on a broken frame.

    Subclasses say whether they mask what they send (`masks`: a client does) and do the handshake,
    reading it with `_take_head` and then passing frames to `_feed`.
    """

    masks = False

    def __init__(self, on_text: Callable[[bytes], None]) -> None:
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.closed = False  # the connection is gone
        self.close_code: int | None = None
        self._head = bytearray()  # the handshake, until it is complete
        self._parser = FrameParser(not self.masks, self._frame)
        self._fragments: list[bytes] = []
        self._close_sent = False

    def send_text(self, data: bytes) -> None:
        if not self._close_sent:
            self._write(OP_TEXT, data)

    def _take_head(self, data: bytes) -> tuple[bytes, bytes] | None:
        """The handshake's head and the bytes after it, once its blank line has arrived."""
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HANDSHAKE:
                raise ProtocolError(1009, "handshake too large")
            return None
        head, rest = bytes(self._head[:end]), bytes(self._head[end + 4:])
        self._head.clear()
        return head, rest

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed(data)
        except ProtocolError as exc:
            self._parser.stopped = True
            self._send_close(exc.code)
            self._end()

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode == OP_TEXT or opcode == OP_CONT:
            if not fin or self._fragments:
                self._fragments.append(payload)
                if not fin:
                    return
                payload, self._fragments = b"".join(self._fragments), []
            self.on_text(payload)
        elif opcode == OP_PING:
            self._write(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            self._parser.stopped = True
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if self.close_code is None:  # not the answer to our own close
                self.close_code = code
            self._send_close(code if code not in (1005, 1006) else 1000)
            self._end()

    def _write(self, opcode: int, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(opcode, data, self.masks))

    def _send_close(self, code: int, reason: bytes = b"") -> None:
        if not self._close_sent:
            self._close_sent = True
            self._write(OP_CLOSE, code.to_bytes(2, "big") + reason[:123])

    def _end(self) -> None:
        if self.transport is not None:
            self.transport.close()
