"""The echo line as the bench's upstream, in its own process, with the bench's hooks.

`BenchSession` is the project's `EchoSession` (the same events, turn detection, truncate checks and
response pacing) plus measurement: it reads the caller's stamp in every append (carrier -> upstream
latency, frames seen, in order), stamps every audio delta it sends (upstream -> carrier latency, frames
sent, the response index, and whether speech_started already cut that response, so a target may drop
it), and notes speech_started send times and truncates.

What it changes is the cost, so that one core carries the simulators of 200 calls: it runs on the lean
WebSocket server (`gateway.bench.wsserver`) instead of aiohttp, and an append that arrives while no
earlier event is still being handled is taken synchronously in the socket's callback (decode, stamp,
VAD) instead of through the receive loop's task. Everything else, and any append queued behind it,
goes through `EchoSession`'s own handler, in arrival order.

Run by the driver as `python -m gateway.bench.echo_proc`; it prints one ready line with its URL and
then answers the driver's commands (see `gateway.bench.proc`).
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import contextlib
import os
import sys
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.bench import stamp
from gateway.bench.proc import announce, run_helper, serve_commands, write_pickle
from gateway.bench.wsserver import WsServerConn
from gateway.core.call import b64_size
from gateway.sim.echo import ROUTES, EchoLine, EchoSession, dialect_for
from gateway.sim.vad import VadEvent

SPEECH_STARTED = "input_audio_buffer.speech_started"
APPEND_HEAD = b'{"type":"input_audio_buffer.append",'  # how the gateway and the relay start an append


@dataclass(slots=True)
class EchoCall:
    """What the echo line saw of one bench call (keyed by the caller's call id)."""

    appends: int = 0
    order_errors: int = 0  # appends whose frame number did not follow the previous one
    last_seq: int = 0
    deltas: int = 0  # stamped deltas the target must deliver
    deltas_stale: int = 0  # stamped deltas of a response speech_started had already cut
    speech_started: list[float] = field(default_factory=list)  # send times, monotonic s
    truncations: list[tuple[float, int, int, bool, float]] = field(default_factory=list)
    # (received at, response index, audio_end_ms, accepted, item audio ms)


class Recorder:
    """Everything the echo process measures, for one scenario."""

    def __init__(self) -> None:
        self.calls: dict[int, EchoCall] = {}
        self.in_latency = array("d")  # ms, frames received inside the window
        self.window = (float("inf"), float("-inf"))
        self.unstamped_appends = 0
        self.unstamped_deltas = 0

    def call(self, call_id: int) -> EchoCall:
        c = self.calls.get(call_id)
        if c is None:
            c = self.calls[call_id] = EchoCall()
        return c


class BenchSession(EchoSession):
    def __init__(self, line: BenchLine, conn: WsServerConn, dialect: str) -> None:
        super().__init__(line, conn, conn.request, dialect)  # type: ignore[arg-type]
        self.rec = line.recorder
        self.bench_call: EchoCall | None = None
        self.call_id = 0
        self._conn = conn
        self._rx = 0.0
        self._backlog: deque[tuple[float, bytes]] = deque()  # events waiting for an earlier one's handler
        self._busy = True  # until session.created is out
        self._delta_type = self._names["audio_delta"]
        self._cut_response: str | None = None  # the response the latest speech_started interrupted
        self._response: str | None = None
        self._response_index = 0
        self._item_index: dict[str, int] = {}
        self._out_seq = 0
        conn.on_text = self.on_text

    async def run(self, reject_beta: bool = False) -> None:  # type: ignore[override]
        """EchoSession.run without the receive loop: the connection calls `on_text`."""
        try:
            if await self.greet(reject_beta):
                await self._drain()  # what arrived meanwhile
                await self._conn.wait_closed()
        finally:
            await self._teardown()

    # ---- receiving: appends in the socket callback when nothing is pending, the rest in order ----

    def on_text(self, data: bytes) -> None:
        rx = time.monotonic()
        if self._busy:
            self._backlog.append((rx, data))
            return
        if data.startswith(APPEND_HEAD):
            with contextlib.suppress(orjson.JSONDecodeError, binascii.Error, ValueError):
                event = orjson.loads(data)
                audio = event.get("audio") if type(event) is dict else None
                if type(audio) is str and len(event) == 2:
                    pcm = binascii.a2b_base64(audio, strict_mode=True)
                    self._rx = rx
                    self._note_append(audio)
                    decisions = self.take_audio(pcm)
                    if decisions:
                        self._busy = True
                        self.spawn(self._drain(decisions))
                    return
        self._backlog.append((rx, data))
        self._busy = True
        self.spawn(self._drain())

    async def _drain(self, decisions: list[VadEvent] | None = None) -> None:
        try:
            if decisions:
                await self.act_on(decisions)
            while self._backlog:
                self._rx, data = self._backlog.popleft()
                await self._on_text(data)  # the echo line's own path: parse, check, dispatch
        finally:
            self._busy = False

    async def _on_append(self, event: dict, event_id: str | None) -> None:
        audio = event.get("audio")
        if type(audio) is str:
            self._note_append(audio)
        await super()._on_append(event, event_id)

    def _note_append(self, audio: str) -> None:
        s = stamp.decode(audio)
        if s is None or s.kind != stamp.KIND_IN:
            self.rec.unstamped_appends += 1
            return
        c = self.bench_call
        if c is None:
            c = self.bench_call = self.rec.call(s.call)
            self.call_id = s.call
        c.appends += 1
        if s.seq != c.last_seq + 1:
            c.order_errors += 1
        c.last_seq = s.seq
        lo, hi = self.rec.window
        if lo <= self._rx <= hi:
            self.rec.in_latency.append(stamp.elapsed_ms(s.ticks, self._rx))

    # ---- sending ----

    async def send(self, event: dict) -> bool:
        kind = event["type"]
        if kind == self._delta_type:
            self._stamp_delta(event)
        elif kind == SPEECH_STARTED:
            # Set before the frame is written: a delta of this response sent after it is stale.
            self._cut_response = self.active.id if self.active is not None else None
            if self.bench_call is not None:
                self.bench_call.speech_started.append(time.monotonic())
        return await super().send(event)

    def _stamp_delta(self, event: dict) -> None:
        delta, response_id = event["delta"], event["response_id"]
        if response_id != self._response:
            self._response = response_id
            self._response_index += 1
            self._item_index[event["item_id"]] = self._response_index
        c = self.bench_call
        if c is None or b64_size(delta) < stamp.STAMP_BYTES:
            self.rec.unstamped_deltas += 1
            return
        stale = response_id == self._cut_response
        r = self.active
        last = r is not None and r.id == response_id and r.sent_bytes >= len(r.audio)
        if stale:
            c.deltas_stale += 1
        else:
            c.deltas += 1
        self._out_seq += 1
        flags = (stamp.FLAG_STALE if stale else 0) | (stamp.FLAG_LAST if last else 0)
        head = stamp.encode(stamp.KIND_OUT, flags, self.call_id, self._out_seq, stamp.now_ticks(),
                            self._response_index)
        event["delta"] = head + delta[stamp.STAMP_CHARS:]

    async def _on_truncate(self, event: dict, event_id: str | None) -> None:
        before = len(self.truncations)
        await super()._on_truncate(event, event_id)
        if len(self.truncations) > before and self.bench_call is not None:
            t = self.truncations[-1]
            self.bench_call.truncations.append((self._rx, self._item_index.get(t["item_id"], -1),
                                                t["audio_end_ms"], t["accepted"], t["item_audio_ms"]))


class BenchLine(EchoLine):
    """The echo line, serving `BenchSession`s on the lean WebSocket server (the same paths and dialect
    choice as `EchoLine`; the bench configures no API key)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.recorder = Recorder()
        self._server: asyncio.Server | None = None
        self._runs: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: WsServerConn(self._open), self.host, self.port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self._close_sessions()
        if self._server is not None:
            self._server.close()
            self._server = None

    def _open(self, conn: WsServerConn) -> bool:
        if conn.request.path not in ROUTES:
            return False
        session = BenchSession(self, conn, dialect_for(conn.request.path, conn.request.headers))
        self.sessions.append(session)
        task = asyncio.ensure_future(session.run())
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        return True

    def report(self) -> dict[str, Any]:
        rec = self.recorder
        errors: dict[str, int] = {}
        for s in self.sessions:
            for e in s.errors_sent:
                body = e.get("error") or {}
                key = str(body.get("code") or body.get("message", "?"))[:60]
                errors[key] = errors.get(key, 0) + 1
        return {
            "calls": {k: {f: getattr(c, f) for f in c.__slots__} for k, c in rec.calls.items()},
            "in_latency": rec.in_latency.tobytes(),
            "unstamped_appends": rec.unstamped_appends,
            "unstamped_deltas": rec.unstamped_deltas,
            "sessions": len(self.sessions),
            "errors_sent": errors,
        }


async def _main(args: argparse.Namespace) -> None:
    from gateway.observability.logging import configure_logging

    configure_logging("warning", "json", stream=sys.stderr)  # stdout is the driver's channel
    line = BenchLine(host="127.0.0.1", port=0, pace=args.pace, delta_ms=args.delta_ms, record_audio_events=False)
    await line.start()
    announce({"ready": True, "url": line.url, "pid": os.getpid()})

    async def handle(cmd: dict[str, Any]) -> dict[str, Any]:
        if cmd["cmd"] == "go":
            line.recorder.window = tuple(cmd["window"])  # type: ignore[assignment]
            return {"ok": True}
        if cmd["cmd"] == "status":
            return {"sessions": len(line.sessions), "open": sum(not s.closed.is_set() for s in line.sessions)}
        if cmd["cmd"] == "report":
            write_pickle(cmd["path"], line.report())
            return {"ok": True}
        return {"error": f"unknown command {cmd['cmd']!r}"}

    try:
        await serve_commands(handle)
    finally:
        await line.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.bench.echo_proc")
    parser.add_argument("--pace", type=float, default=2.0)
    parser.add_argument("--delta-ms", type=int, default=20)
    args = parser.parse_args(argv)
    run_helper(lambda: _main(args))


if __name__ == "__main__":
    main()
