"""WebSocket framing (RFC 6455) for the bench's lean client and server: text, ping/pong, close.

The simulated peers must cost far less than the target they load, and a full WebSocket library spends
most of its time in futures and tasks per message. These are the parts both ends share: building one
frame as one `bytes`, and a parser that hands each complete frame to a callback, synchronously.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Callable

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
MAX_MESSAGE = 1 << 20  # nothing the bench sends is near this


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
