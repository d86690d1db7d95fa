"""The bench's lean WebSocket pieces, exactly: framing, the server connection against the client over a
loopback socket, and the callers' shared frame clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from gateway.bench import wsclient, wsframe
from gateway.bench.load_caller import FrameClock
from gateway.bench.wsserver import WsServerConn


def _frames(masked: bool, chunks: list[bytes]) -> list[tuple[int, int, bytes]]:
    got: list[tuple[int, int, bytes]] = []
    parser = wsframe.FrameParser(masked, lambda fin, op, payload: got.append((fin, op, bytes(payload))))
    for chunk in chunks:
        parser.feed(chunk)
    return got


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("size", [0, 1, 125, 126, 250, 65535, 65536, 300_000])
def test_frames_round_trip_whole_split_and_back_to_back(masked: bool, size: int) -> None:
    data = bytes(i * 7 % 256 for i in range(size))
    one = wsframe.frame(wsframe.OP_TEXT, data, masked)
    assert _frames(masked, [one]) == [(0x80, wsframe.OP_TEXT, data)]
    cut = min(len(one) - 1, 3)
    assert _frames(masked, [one[:cut], one[cut:] + one]) == [(0x80, wsframe.OP_TEXT, data)] * 2


def test_every_split_of_a_small_frame_parses() -> None:
    one = wsframe.frame(wsframe.OP_TEXT, b'{"event":"media"}', masked=True)
    for cut in range(1, len(one)):
        assert _frames(True, [one[:cut], one[cut:]]) == [(0x80, wsframe.OP_TEXT, b'{"event":"media"}')]


def test_a_frame_breaking_the_masking_rule_or_too_big_is_a_protocol_error() -> None:
    with pytest.raises(wsframe.ProtocolError) as unmasked:
        _frames(True, [wsframe.frame(wsframe.OP_TEXT, b"x", masked=False)])
    assert unmasked.value.code == 1002
    with pytest.raises(wsframe.ProtocolError) as masked:
        _frames(False, [wsframe.frame(wsframe.OP_TEXT, b"x" * 300, masked=True)])
    assert masked.value.code == 1002
    huge = bytes((0x81, 127)) + (wsframe.MAX_MESSAGE + 1).to_bytes(8, "big")
    with pytest.raises(wsframe.ProtocolError) as big:
        _frames(False, [huge])
    assert big.value.code == 1009


async def _server(on_open: Callable[[WsServerConn], bool]) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: WsServerConn(on_open), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_server_and_client_exchange_text_and_close_cleanly() -> None:
    conns: list[WsServerConn] = []
    server_closed = asyncio.Event()

    def on_open(conn: WsServerConn) -> bool:
        if conn.request.path != "/v1/realtime":
            return False
        conns.append(conn)
        conn.on_text = lambda payload: conn.send_text(b"echo:" + bytes(payload))
        conn.on_close = server_closed.set
        return True

    server, port = await _server(on_open)
    got: list[bytes] = []
    three = asyncio.Event()

    def on_text(payload: bytes) -> None:
        got.append(bytes(payload))
        if len(got) == 3:
            three.set()

    client_closed = asyncio.Event()
    client = await wsclient.connect(f"ws://127.0.0.1:{port}/v1/realtime?model=m", on_text, client_closed.set)
    assert conns[0].request.query == {"model": "m"} and conns[0].request.headers["HOST"] == f"127.0.0.1:{port}"
    big = b"y" * 70_000
    for payload in (b"one", b"two", big):
        client.send_text(payload)
    async with asyncio.timeout(5):
        await three.wait()
    assert got == [b"echo:one", b"echo:two", b"echo:" + big]
    client.close(1000)
    async with asyncio.timeout(5):
        await server_closed.wait()
        await client_closed.wait()
    assert conns[0].close_code == 1000 and client.close_code == 1000
    server.close()


async def test_server_close_reaches_the_client_with_its_code() -> None:
    conns: list[WsServerConn] = []

    def on_open(conn: WsServerConn) -> bool:
        conns.append(conn)
        return True

    server, port = await _server(on_open)
    closed = asyncio.Event()
    client = await wsclient.connect(f"ws://127.0.0.1:{port}/x", lambda p: None, closed.set)
    await conns[0].close(code=1001, message=b"server shutdown")
    async with asyncio.timeout(5):
        await closed.wait()
    assert client.close_code == 1001 and conns[0].closed
    with pytest.raises(ConnectionError):
        await conns[0].send_frame(b"late")
    server.close()


async def test_refused_path_and_plain_http_get_an_http_answer() -> None:
    server, port = await _server(lambda conn: False)
    with pytest.raises(wsclient.HandshakeError, match="404"):
        await wsclient.connect(f"ws://127.0.0.1:{port}/nope", lambda p: None, lambda: None)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readline()).startswith(b"HTTP/1.1 426")
    writer.close()
    server.close()


async def test_frame_clock_runs_each_callback_once_at_or_after_its_deadline_in_order() -> None:
    clock = FrameClock(asyncio.get_running_loop())
    start = time.monotonic()
    ran: list[tuple[int, float, float]] = []
    deadlines = [start + d for d in (0.030, 0.005, 0.0051, 0.020, 0.012)]
    all_ran = asyncio.Event()

    def note(i: int, deadline: float) -> None:
        ran.append((i, deadline, time.monotonic()))
        if len(ran) == len(deadlines):
            all_ran.set()

    for i, deadline in enumerate(deadlines):
        clock.at(deadline, lambda i=i, deadline=deadline: note(i, deadline))
    async with asyncio.timeout(5):
        await all_ran.wait()
    assert [i for i, _, _ in ran] == [1, 2, 4, 3, 0]
    assert all(at >= deadline for _, deadline, at in ran)  # never early


async def test_frame_clock_callbacks_can_file_the_next_frame() -> None:
    clock = FrameClock(asyncio.get_running_loop())
    times: list[float] = []
    t0 = time.monotonic()
    done = asyncio.Event()

    def tick() -> None:
        times.append(time.monotonic())
        if len(times) < 10:
            clock.at(t0 + 0.002 * (len(times) + 1), tick)
        else:
            done.set()

    clock.at(t0 + 0.002, tick)
    async with asyncio.timeout(5):
        await done.wait()
    assert all(at >= t0 + 0.002 * (k + 1) for k, at in enumerate(times))
