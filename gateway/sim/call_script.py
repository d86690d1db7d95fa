"""What a simulated caller says and when (`CallScript`), what it reports (`CallReport`), and the player that
sends the script's frames on the loop clock and assembles the report (`ScriptPlayer`, a part of every
simulated caller: the carrier's wire is the caller's own)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.sim.audio import FRAME_BYTES, FRAME_MS, SILENCE_BYTE, frames, trailing_quiet_ms
from gateway.sim.playback import TwilioPlayback

SILENT_FRAME = bytes([SILENCE_BYTE]) * FRAME_BYTES


@dataclass
class CallScript:
    utterances: list[bytes]  # μ-law audio to speak, in order
    barge_in_after_ms: float | None = None  # speak the next utterance this long into the agent's audio
    idle_before_next_ms: float = 700.0  # otherwise wait until the agent's playback has been idle this long
    lead_silence_ms: float = 300.0  # silence before the first utterance
    answer_timeout_ms: float = 8000.0  # give up waiting for an agent answer after this
    hangup_after_idle_ms: float = 700.0  # after the last answer, hang up once playback is idle this long
    max_call_ms: float = 120_000.0  # hard bound on the media phase
    keys: str = ""  # after the last utterance's answer, press these keys (one turn), then wait for the answer
    key_gap_ms: float = 200.0  # between two key presses


@dataclass
class CallReport:  # timestamps in ms relative to the stream start (the `start` message)
    call_sid: str = ""
    stream_sid: str = ""
    twiml: str = ""
    webhook_status: int = 0
    stream_parameters: dict[str, str] = field(default_factory=dict)
    events: list[tuple[float, str, dict]] = field(default_factory=list)
    utterance_ends_ms: list[float] = field(default_factory=list)  # the end of each utterance's audio
    speech_ends_ms: list[float] = field(default_factory=list)  # the same, less its trailing quiet (see audio.py)
    turn_latencies_ms: list[float] = field(default_factory=list)  # end of audio -> first agent audio played
    clears: list[dict] = field(default_factory=list)
    marks_echoed: list[str] = field(default_factory=list)
    marks_flushed: list[str] = field(default_factory=list)
    frames_sent: int = 0
    frames_received: int = 0
    media_ms_received: float = 0.0
    heard: bytes = b""  # played audio, concatenated
    close_code: int | None = None
    closed_by: str = ""  # "caller" (we sent stop) or "gateway"
    errors: list[str] = field(default_factory=list)
    heard_timeline: bytes = b""  # played audio at its real position from the stream start, gaps as silence
    barge_ins_ms: list[float] = field(default_factory=list)  # when an utterance started over agent audio
    answer_starts_ms: list[float | None] = field(default_factory=list)  # per utterance, None: no answer
    # Per utterance: end of speech -> first agent audio played ("answer heard after"), None: no answer.
    answer_heard_after_ms: list[float | None] = field(default_factory=list)
    keys_turn: int | None = None  # the turn (index in the lists above) whose "utterance" was the script's keys
    keys_received: list[str] = field(default_factory=list)  # keys the gateway played toward the caller


class CallRefused(Exception):
    """The webhook did not answer with a usable ``<Connect><Stream>``."""


class ScriptPlayer:
    """The script's turn logic and the report, for a caller that provides the wire."""

    # what the caller provides
    report: CallReport
    playback: TwilioPlayback
    closed: asyncio.Event
    _t0: float | None
    _answer_starts: list[float | None]
    _speech_ends: list[float]
    _events: list[tuple[float, str, dict]]

    _now: Callable[[], float]
    _event: Callable[..., None]
    _error: Callable[[str], None]
    _sid_field: Callable[[], dict[str, str]]
    _send: Callable[..., Awaitable[None]]
    send_dtmf: Callable[[str], Awaitable[None]]

    async def _speak(self, script: CallScript) -> None:
        """Send a 20 ms frame per 20 ms of loop time (absolute deadlines) following the turn logic."""
        assert self._t0 is not None
        loop = asyncio.get_running_loop()
        utts = [frames(u) or [SILENT_FRAME] for u in script.utterances]
        quiet_ms = [trailing_quiet_ms(b"".join(u)) for u in utts]  # the silence each utterance ends with
        turns = len(utts) + (1 if script.keys else 0)  # the keys, when given, are the last turn
        gap_frames = max(1, round(script.key_gap_ms / FRAME_MS))
        phase, index, pos, k = "lead", -1, 0, 0
        barge_pending = False
        while not self.closed.is_set():
            t, now = k * FRAME_MS, self._now()  # presentation time of frame k; decided at its start
            if now > script.max_call_ms:
                self._error(f"call still running after {script.max_call_ms:.0f} ms: hanging up")
                break
            start_next = False
            if phase == "lead":
                start_next = t >= script.lead_silence_ms or not utts
            elif phase == "wait":
                last = index == turns - 1
                ans = self._answer_starts[index]
                if ans is None or ans > now:
                    if now - self.report.utterance_ends_ms[index] >= script.answer_timeout_ms:
                        self._error(f"no agent answer to utterance {index + 1} "
                                    f"within {script.answer_timeout_ms:.0f} ms")
                        if last:
                            break
                        start_next = True
                elif (not last and script.barge_in_after_ms is not None and self.playback.is_playing(now)
                      and now >= ans + script.barge_in_after_ms):
                    start_next = barge_pending = True
                elif self.playback.idle_ms(now) >= (
                        script.hangup_after_idle_ms if last else script.idle_before_next_ms):
                    if last:
                        break
                    start_next = True
            if start_next:
                if index + 1 >= turns:
                    break
                index, pos, phase = index + 1, 0, "speak" if index + 1 < len(utts) else "keys"
                self._answer_starts.append(None)
                if phase == "keys":  # pressed one per gap, the first now: the turn ends with the last key
                    self.report.keys_turn = index
                    self._event("keys_start", keys=len(script.keys), at_ms=t)
                    self._speech_ends.append(float(t + ((len(script.keys) - 1) * gap_frames + 1) * FRAME_MS))
                else:
                    self._speech_ends.append(float(t + len(utts[index]) * FRAME_MS) - quiet_ms[index])
                    self._event("utterance_start", index=index, at_ms=t, barge_in=barge_pending)
                if barge_pending:
                    self.report.barge_ins_ms.append(float(t))
                barge_pending = False
            ends_utterance = False
            key = None
            if phase == "keys":
                frame = SILENT_FRAME
                if pos % gap_frames == 0:
                    key = script.keys[pos // gap_frames]
                pos += 1
                if key is not None and pos > (len(script.keys) - 1) * gap_frames:
                    phase, ends_utterance = "wait", True
                    self.report.utterance_ends_ms.append(float(t + FRAME_MS))
                    self.report.speech_ends_ms.append(self._speech_ends[index])
            elif phase == "speak":
                frame = utts[index][pos]
                pos += 1
                if pos == len(utts[index]):
                    phase, ends_utterance = "wait", True
                    self.report.utterance_ends_ms.append(float(t + FRAME_MS))
                    self.report.speech_ends_ms.append(self._speech_ends[index])
            else:
                frame = SILENT_FRAME
            deadline = self._t0 + (k + 1) * FRAME_MS / 1000.0  # frame k is sent once its 20 ms have passed
            while (delay := deadline - loop.time()) > 0 and not self.closed.is_set():
                with contextlib.suppress(TimeoutError):  # wakes at once if the gateway hangs up
                    await asyncio.wait_for(self.closed.wait(), delay)
            if self.closed.is_set():
                break
            media = {"track": "inbound", "chunk": str(k + 1), "timestamp": str(t),
                     "payload": base64.b64encode(frame).decode("ascii")}
            await self._send({"event": "media", "media": media, **self._sid_field()})
            self.report.frames_sent += 1
            if key is not None:  # pressed during this frame's 20 ms
                await self.send_dtmf(key)
            if ends_utterance:
                self._event("keys_end" if key is not None else "utterance_end", index=index, at_ms=t + FRAME_MS)
            k += 1

    def _finish(self) -> CallReport:
        r, now = self.report, self._now()
        pb = self.playback
        pb.advance(now)
        r.heard = pb.played_audio(now)
        r.heard_timeline = pb.played_timeline(now)
        r.marks_echoed, r.marks_flushed = list(pb.marks_echoed), list(pb.marks_flushed)
        r.answer_starts_ms = [a if a is not None and a <= now else None
                              for a in self._answer_starts[: len(r.utterance_ends_ms)]]
        r.turn_latencies_ms = [a - u for u, a in zip(r.utterance_ends_ms, r.answer_starts_ms, strict=True)
                               if a is not None]
        r.answer_heard_after_ms = [None if a is None else a - s
                                   for s, a in zip(r.speech_ends_ms, r.answer_starts_ms, strict=True)]
        t0 = self._t0 if self._t0 is not None else (self._events[0][0] if self._events else 0.0)
        events = [((t - t0) * 1000.0, name, data) for t, name, data in self._events]
        for seg in pb.finished_segments(now):
            data = {"played_ms": round(seg.played_ms, 1), "cleared": seg.cleared}
            events.append((seg.end_ms, "agent_audio_end", data))
        r.events = sorted(events, key=lambda e: e[0])
        return r
