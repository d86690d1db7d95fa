"""A lean simulated Twilio caller for load: many calls in one process, turn after turn.

It speaks the same protocol as `gateway.sim.caller.SimulatedCaller` (webhook, TwiML, `connected`,
`start`, 20 ms `media` frames on absolute deadlines, `mark` echoes, `stop`) and plays the target's
audio with the same model, `TwilioPlayback`: real-time playout, a mark echoed when the audio before it
has played, `clear` flushing the queue and echoing every pending mark. It keeps no recording and no
event log, and runs on loop callbacks rather than tasks (`gateway.bench.wsclient`), so it stays
cheaper than the target at hundreds of calls: audio is never decoded, only its stamp is read.

Each frame it sends carries a stamp (call id, frame number, send time); each media frame it receives
carries the echo line's stamp, from which it measures upstream -> carrier latency and, at a `clear`,
how much of the cut response it actually played.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from gateway.bench import stamp, wsclient
from gateway.bench.wires import CLEAR, MARK, MEDIA, Wire
from gateway.core.call import b64_size
from gateway.sim.audio import FRAME_BYTES, FRAME_MS, SILENCE_BYTE, b64, frames, speech_like
from gateway.sim.playback import BYTES_PER_MS, TwilioPlayback

EARLY_S = 0.0003  # a timer that fires this much early is on time
MARK_TIMER_SLACK_MS = 0.5  # uvloop timers fire up to ~0.5 ms early: aim that late, so a mark is never early
LEAD, SPEAK, WAIT = "lead", "speak", "wait"


@dataclass(frozen=True)
class Script:
    utterance_ms: int = 1200
    barge_in_after_ms: float | None = 400.0  # None: let every answer play out
    lead_ms: float = 300.0
    idle_before_next_ms: float = 300.0
    answer_timeout_ms: float = 6000.0
    hangup_idle_ms: float = 300.0  # when draining: hang up once the last answer is all in, played, and rested
    drain_timeout_ms: float = 20_000.0


class LoadPlayback(TwilioPlayback):
    """`TwilioPlayback` that forgets chunks which have fully played (they only serve its recording)."""

    def enqueue_audio(self, audio: bytes, now: float) -> float:
        start = super().enqueue_audio(audio, now)
        chunks = self._chunks
        if len(chunks) > 128:
            self._chunks = [c for c in chunks if c.kept is None and c.start_ms + len(c.data) / BYTES_PER_MS > now]
        return start


class FrameClock:
    """One loop timer for the frames of every call in the process.

    Each call files its next frame under the millisecond it falls due in; a single timer runs the due
    milliseconds in order. A frame goes out at most about a millisecond after its deadline (never
    before; its stamp records exactly when), and the loop wakes at most 1,000 times a second instead
    of 50 times a second per call: at 200 calls that is most of the callers' cost.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[int, list[Callable[[], None]]] = {}
        self._keys: list[int] = []  # heap of the milliseconds in _due
        self._handle: asyncio.TimerHandle | None = None
        self._armed_ms = 0
        self._firing = False  # the due callbacks are running: arm once, after them

    def at(self, deadline: float, callback: Callable[[], None]) -> None:
        """Run `callback` in the first tick at or after monotonic time `deadline`."""
        ms = math.ceil(deadline * 1000.0)
        bucket = self._due.get(ms)
        if bucket is None:
            self._due[ms] = [callback]
            heapq.heappush(self._keys, ms)
        else:
            bucket.append(callback)
        if not self._firing and (self._handle is None or ms < self._armed_ms):
            self._arm(ms)

    def _arm(self, ms: int) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_ms = ms
        self._handle = self._loop.call_at(self._loop.time() + (ms / 1000.0 - time.monotonic()), self._fire)

    def _fire(self) -> None:
        self._handle = None
        keys, due = self._keys, self._due
        now_ms = time.monotonic() * 1000.0
        self._firing = True
        try:
            while keys and keys[0] <= now_ms:
                for callback in due.pop(heapq.heappop(keys)):
                    callback()
        finally:
            self._firing = False
            if keys:
                self._arm(keys[0])


_fillers: dict[int, bytes] = {}


def filler(n: int) -> bytes:
    """A shared placeholder of n bytes: the playback model only needs the audio's length."""
    b = _fillers.get(n)
    if b is None:
        b = _fillers[n] = bytes([SILENCE_BYTE]) * n
    return b


def utterance_tails(ms: int, seed: int) -> list[str]:
    """Base64 of each 20 ms frame of the utterance, without the stamp's first 15 bytes."""
    return [b64(f[stamp.STAMP_BYTES:]) for f in frames(speech_like(ms, seed=seed))]


SILENT_TAIL = b64(bytes([SILENCE_BYTE]) * (FRAME_BYTES - stamp.STAMP_BYTES))


@dataclass
class CallStats:
    call: int
    connected: bool = False
    ended: str = ""  # how the call ended: hangup, drain_timeout, closed_by_target, error
    errors: list[str] = field(default_factory=list)
    frames_sent: int = 0
    media: int = 0  # stamped, not stale
    media_stale: int = 0
    media_foreign: int = 0  # no stamp, or another call's
    media_order_errors: int = 0
    marks: int = 0
    marks_echoed: int = 0
    marks_flushed: int = 0
    turns: int = 0
    barge_ins: int = 0
    no_answer: int = 0
    clears: list[tuple[float, int, float, bool]] = field(default_factory=list)
    # (received at, response index, ms of that response played at the clear, playback was busy)


class LoadCall:
    """One simulated call, driven by loop callbacks: a tick per 20 ms frame, a timer for due marks."""

    def __init__(self, base_url: str, call_id: int, http: aiohttp.ClientSession, script: Script,
                 tails: list[str], on_latency: Callable[[float, float], None], drain_at: float,
                 clock: FrameClock | None = None, wire: Wire | None = None) -> None:
        self.base_url = base_url
        self.call_id = call_id
        self.http = http
        self.script = script
        self.tails = tails
        self.on_latency = on_latency
        self.drain_at = drain_at
        self.stats = CallStats(call_id)
        self.wire = wire or Wire(call_id)
        self.sid, self.call_sid = self.wire.stream_sid, self.wire.call_sid
        self.playback = LoadPlayback()
        self.ws: wsclient.WsClient | None = None
        self.active = False
        self._loop = asyncio.get_running_loop()
        self._ended: asyncio.Future[None] = self._loop.create_future()  # we hung up, or the target did
        self._gone: asyncio.Future[None] = self._loop.create_future()  # the connection is closed
        self._seq = 0
        self._out_seq = 0
        self._clock = clock or FrameClock(self._loop)
        self._marks: asyncio.TimerHandle | None = None
        self._marks_at: float | None = None
        # the script: phase, position in the utterance, frames sent, when speaking ended, stream start
        self._phase, self._pos, self._k, self._utt_end, self._t0 = LEAD, 0, 0, 0.0, 0.0
        # playback of the current response, for what a clear cut: index, [(start ms, length ms)]
        self._resp_index = -1
        self._resp_chunks: list[tuple[float, float]] = []
        self._cut_index = -1
        self._waiting_answer = False
        self._answer_start: float | None = None
        self._answer_index = -1
        self._turn_base = -1  # the newest response heard when this turn started: not its answer
        self._answer_done = False  # its last delta arrived

    # --- the call ------------------------------------------------------------------------------

    async def run(self, start_at: float) -> None:
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        try:
            await self._connect()
            self._t0 = time.monotonic()
            self._schedule_tick()
            await self._ended
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._gone), 3.0)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, ET.ParseError,
                wsclient.HandshakeError) as exc:
            self.stats.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            self.stats.ended = self.stats.ended or "error"
        finally:
            self.active = False
            if self._marks is not None:
                self._marks.cancel()  # a frame still filed with the clock finds the call inactive
            if self.ws is not None and not self.ws.closed:
                self.ws.abort()

    async def _connect(self) -> None:
        wire = self.wire
        async with self.http.post(self.base_url + wire.webhook_path, data=wire.webhook_form()) as resp:
            body = await resp.text()
            if resp.status != 200:
                raise ValueError(f"webhook answered HTTP {resp.status}")
        url, custom = wire.stream_of(body)
        if url.startswith("wss://") and self.base_url.startswith("http://"):
            url = "ws://" + url[len("wss://"):]
        self.ws = await wsclient.connect(url, self._on_message, self._on_close)
        self._seq += 1
        for frame in wire.opening(custom, self._seq):
            self.ws.send_text(frame)
        self.stats.connected = self.active = True

    def _send(self, msg: dict[str, Any]) -> None:
        assert self.ws is not None
        self.ws.send_text(orjson.dumps(msg))

    def _at(self, deadline: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """Run `callback` at about monotonic time `deadline` (loop timers may fire a little early)."""
        return self._loop.call_at(self._loop.time() + (deadline - time.monotonic()), callback)

    def _schedule_tick(self) -> None:
        self._clock.at(self._t0 + (self._k + 1) * FRAME_MS / 1000.0, self._on_tick)

    def _on_close(self) -> None:
        self.active = False
        if not self._ended.done():
            self.stats.ended = self.stats.ended or "closed_by_target"
            self._ended.set_result(None)
        if not self._gone.done():
            self._gone.set_result(None)

    def _hang_up(self, how: str) -> None:
        self.stats.ended = self.stats.ended or how
        self._seq += 1
        assert self.ws is not None
        stop = self.wire.stop(self._seq)
        if stop is not None:
            self.ws.send_text(stop)
        self.ws.close(1000)
        self.active = False
        if not self._ended.done():
            self._ended.set_result(None)

    # --- speaking: one tick per 20 ms frame, on absolute deadlines ---------------------------------

    def _on_tick(self) -> None:
        if self.ws is None or self.ws.closed or not self.active:
            return
        now = time.monotonic()
        if now < self._t0 + (self._k + 1) * FRAME_MS / 1000.0 - EARLY_S:
            return self._schedule_tick()  # frame k goes once its 20 ms have passed
        script, pb = self.script, self.playback
        now_ms = now * 1000.0
        draining = now >= self.drain_at
        phase, start_next, barge = self._phase, False, False
        if phase is LEAD:
            if draining:
                return self._hang_up("hangup")
            start_next = self._k * FRAME_MS >= script.lead_ms
        elif phase is WAIT:
            answer = self._answer_start
            if draining:  # no new turn: hang up once the answer in progress is all in and played
                if self._answer_done and pb.idle_ms(now_ms) >= script.hangup_idle_ms:
                    return self._hang_up("hangup")
                if (now - self.drain_at) * 1000.0 > script.drain_timeout_ms:
                    return self._hang_up("drain_timeout")
            elif answer is None or answer > now_ms:
                if now_ms - self._utt_end >= script.answer_timeout_ms:
                    self.stats.no_answer += 1
                    start_next = True
            elif (script.barge_in_after_ms is not None and pb.is_playing(now_ms)
                  and now_ms >= answer + script.barge_in_after_ms):
                start_next = barge = True
            elif pb.idle_ms(now_ms) >= script.idle_before_next_ms:
                start_next = True
        if start_next:
            self._phase, self._pos = SPEAK, 0
            self.stats.turns += 1
            self.stats.barge_ins += barge
            self._waiting_answer, self._answer_start, self._answer_done = False, None, False
            self._turn_base = self._resp_index
        if self._phase is SPEAK:
            tail = self.tails[self._pos]
            self._pos += 1
            if self._pos == len(self.tails):
                self._phase, self._utt_end, self._waiting_answer = WAIT, now_ms, True
        else:
            tail = SILENT_TAIL
        self._seq += 1
        self._k = k = self._k + 1
        payload = stamp.encode(stamp.KIND_IN, 0, self.call_id, k, stamp.now_ticks()) + tail
        self.ws.send_text(self.wire.media(self._seq, k, payload))
        self.stats.frames_sent += 1
        return self._schedule_tick()

    # --- listening -----------------------------------------------------------------------------

    def _on_message(self, data: bytes) -> None:
        t = time.monotonic()
        now_ms = t * 1000.0
        kind, value = self.wire.parse(data)
        pb, st = self.playback, self.stats
        if kind == MEDIA:
            payload = value
            n = b64_size(payload)
            start = pb.enqueue_audio(filler(n), now_ms)
            s = stamp.decode(payload)
            if s is None or s.kind != stamp.KIND_OUT or s.call != self.call_id:
                st.media_foreign += 1
                return
            stale = s.flags & stamp.FLAG_STALE
            if stale:
                st.media_stale += 1
            else:
                st.media += 1
            if s.seq <= self._out_seq:
                st.media_order_errors += 1
            self._out_seq = s.seq
            self.on_latency(t, stamp.elapsed_ms(s.ticks, t))
            if s.extra != self._resp_index:
                self._resp_index, self._resp_chunks = s.extra, []
            self._resp_chunks.append((start, n / BYTES_PER_MS))
            if self._waiting_answer and not stale and s.extra not in (self._cut_index, self._turn_base):
                self._waiting_answer, self._answer_start, self._answer_index = False, start, s.extra
            if s.flags & stamp.FLAG_LAST and s.extra == self._answer_index:
                self._answer_done = True
        elif kind == MARK:
            st.marks += 1
            self._echo_marks(pb.enqueue_mark(value, now_ms))
            self._arm_marks()
        elif kind == CLEAR:
            due = pb.advance(now_ms)
            busy = pb.is_playing(now_ms)
            flushed, _ = pb.clear(now_ms)
            played = sum(min(length, max(0.0, now_ms - begin)) for begin, length in self._resp_chunks)
            st.clears.append((t, self._resp_index, played, busy))
            self._cut_index = self._resp_index
            self._arm_marks()
            self._echo_marks(due)
            if self.wire.echoes_flushed_marks:
                self._echo_marks(flushed, flushed=True)
            else:
                self.stats.marks_flushed += len(flushed)
            answer = self.wire.cleared(self._next_seq())
            if answer is not None and self.ws is not None:
                self.ws.send_text(answer)

    # --- marks: echoed when played, on one timer per call ----------------------------------------

    def _echo_marks(self, names: list[str], flushed: bool = False) -> None:
        if not names or self.ws is None:
            return
        if flushed:
            self.stats.marks_flushed += len(names)
        else:
            self.stats.marks_echoed += len(names)
        for name in names:
            self._seq += 1
            self.ws.send_text(self.wire.mark_played(self._seq, name))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _arm_marks(self) -> None:
        due = self.playback.next_due_ms()
        if due == self._marks_at:
            return
        if self._marks is not None:
            self._marks.cancel()
            self._marks = None
        self._marks_at = due
        if due is not None:
            self._marks = self._at((due + MARK_TIMER_SLACK_MS) / 1000.0, self._marks_due)

    def _marks_due(self) -> None:
        self._marks = self._marks_at = None
        if self.active:
            self._echo_marks(self.playback.advance(time.monotonic() * 1000.0))
            self._arm_marks()
