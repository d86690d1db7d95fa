"""Call recordings end to end: the real app records a call the simulated caller places, with a barge-in;
the WAV's two channels line up with what the caller sent and what it heard (cut at the barge-in)."""

from __future__ import annotations

import asyncio
import base64
import shutil
import stat
import wave
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from gateway.carriers.vonage.convert import Resampler
from gateway.sim.audio import speech_like, ulaw_to_pcm16
from gateway.sim.caller import CallReport, CallScript, SimulatedCaller
from gateway.sim.echo import EchoLine
from gateway.sim.vonage_caller import VonageCaller

from .conftest import Gateway, sample, start_gateway

FRAME = 160  # samples in 20 ms at 8 kHz
BARGE_IN = CallScript(utterances=[speech_like(2000, seed=4), speech_like(500, seed=5)], barge_in_after_ms=700)


class RecordedCaller(SimulatedCaller):
    """The simulated caller, keeping each audio frame it sends with its place on its timeline (ms)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[int, bytes]] = []

    async def _send(self, *msgs: dict[str, Any], seq: bool = True) -> None:
        for msg in msgs:
            if msg.get("event") == "media":
                self.sent.append((int(msg["media"]["timestamp"]), base64.b64decode(msg["media"]["payload"])))
        await super()._send(*msgs, seq=seq)


async def call_and_summary(gateway: Gateway, reports: Path) -> tuple[RecordedCaller, CallReport, dict]:
    caller = RecordedCaller(gateway.url)
    report = await caller.run(BARGE_IN)
    await asyncio.wait_for(gateway.state.idle.wait(), 10)
    await asyncio.wait_for(gateway.state.reports._queue.join(), 10)
    return caller, report, filed_summary(reports)


def filed_summary(reports: Path) -> dict:
    (summary,) = [orjson.loads(line) for f in reports.glob("calls-*.jsonl") for line in f.read_bytes().splitlines()]
    return summary


def file_mode(path: str) -> int:
    return stat.S_IMODE(Path(path).stat().st_mode)


def read_stereo(path: str) -> tuple[int, np.ndarray, np.ndarray]:
    with wave.open(path, "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (2, 2)
        rate = wav.getframerate()
        frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    return rate, frames[0::2], frames[1::2]


def pcm(ulaw: bytes) -> np.ndarray:
    return np.frombuffer(ulaw_to_pcm16(ulaw), dtype="<i2")


def best_lag(actual: np.ndarray, expected: np.ndarray, start: int, end: int, frame: int = FRAME) -> tuple[int, float]:
    """The shift of `actual` against `expected[start:end]`, within one frame either way, at which most of
    its samples agree: (shift in samples, share of the samples equal there)."""
    want = expected[start:end]
    best = (0, -1.0)
    for lag in range(-frame, frame + 1):
        if start + lag < 0 or end + lag > len(actual):
            continue
        share = float(np.mean(actual[start + lag: end + lag] == want))
        if share > best[1]:
            best = (lag, share)
    return best


def heard_segments(report: CallReport) -> list[tuple[int, int, bool]]:
    """Each run of agent audio the caller heard, on its timeline in samples: (start, end, cut by a clear)."""
    return [(round((t - data["played_ms"]) * 8), round(t * 8), data["cleared"])
            for t, name, data in report.events if name == "agent_audio_end"]


async def test_the_two_channels_are_what_the_caller_sent_and_heard(echo: EchoLine, tmp_path: Path):
    recordings, reports = tmp_path / "recordings", tmp_path / "reports"
    recordings.mkdir()
    written = sample("gateway_recordings_total", {"result": "written"})
    gateway, runner = await start_gateway(echo, "ga", RECORDINGS_DIR=str(recordings), CALL_REPORTS_DIR=str(reports))
    try:
        caller, report, summary = await call_and_summary(gateway, reports)
    finally:
        await runner.cleanup()
    assert report.errors == [] and len(report.clears) == 1, report.events

    recording = summary["recording"]
    day = summary["started_at"][:10]
    assert recording["file"] == str(recordings / day / f"{report.call_sid}.wav")
    assert recording["truncated"] is False
    assert file_mode(recording["file"]) & 0o137 == 0  # 0o640 at most (the umask may take more)
    assert sample("gateway_recordings_total", {"result": "written"}) == written + 1
    rate, left, right = read_stereo(recording["file"])
    assert rate == 8000
    assert abs(len(left) / rate - recording["duration_s"]) < 0.001

    # Left: every frame the caller sent, at its place on the caller's timeline (within a frame).
    sent = np.zeros(len(left), dtype="<i2")
    for t_ms, ulaw in caller.sent:
        sent[t_ms * 8: t_ms * 8 + len(ulaw)] = pcm(ulaw)[: max(0, len(left) - t_ms * 8)]
    lag, share = best_lag(left, sent, FRAME, len(left) - FRAME)
    assert abs(lag) <= FRAME and share > 0.99, (lag, share)
    assert len(caller.sent) * FRAME - len(left) <= 5 * FRAME  # the recording runs to the end of the call

    # Right: each stretch of the agent's audio the caller heard, sample for sample, within a frame of where
    # the caller heard it; the answer cut by the barge-in stops where the caller stopped hearing it.
    heard = pcm(report.heard_timeline)
    assert abs(len(heard) - len(right)) <= 5 * FRAME
    segments = heard_segments(report)
    assert len(segments) >= 2 and [cut for _, _, cut in segments].count(True) == 1, segments
    placed = np.zeros(len(right), dtype=bool)
    for start, end, cut in segments:
        lag, share = best_lag(right, heard, start, end)
        assert abs(lag) <= FRAME and share > 0.98, (start, end, lag, share)
        placed[max(0, start - FRAME): end + FRAME] = True
        if cut:  # nothing of the cut answer after the cut, within a frame
            assert abs(end - round(report.clears[0]["t_ms"] * 8)) <= 1
            assert np.count_nonzero(right[end + lag: end + 10 * FRAME]) == 0
    assert np.count_nonzero(right[~placed]) == 0  # and no agent audio the caller did not hear


async def test_a_recording_that_cannot_be_written_is_counted_and_the_call_goes_on(echo: EchoLine, tmp_path: Path):
    recordings, reports = tmp_path / "recordings", tmp_path / "reports"
    recordings.mkdir()
    failed = sample("gateway_recordings_total", {"result": "failed"})
    gateway, runner = await start_gateway(echo, "ga", RECORDINGS_DIR=str(recordings), CALL_REPORTS_DIR=str(reports))
    try:
        shutil.rmtree(recordings)
        recordings.write_text("the directory went away; a file took its place")  # root can write anywhere else
        _, report, summary = await call_and_summary(gateway, reports)
    finally:
        await runner.cleanup()
    assert report.errors == [] and report.clears and len(report.turn_latencies_ms) == 2
    assert summary["outcome"] == "completed"
    assert summary["recording"]["file"] is None and "Error" in summary["recording"]["error"]
    assert sample("gateway_recordings_total", {"result": "failed"}) == failed + 1


async def test_vonage_is_recorded_at_the_session_rate_both_ways(echo: EchoLine, tmp_path: Path):
    """Vonage's L16 is converted to the session's 24 kHz on the way in, and the answers come out in it: both
    channels are recorded at 24 kHz."""
    recordings, reports = tmp_path / "recordings", tmp_path / "reports"
    recordings.mkdir()
    gateway, runner = await start_gateway(echo, "ga", RECORDINGS_DIR=str(recordings), CALL_REPORTS_DIR=str(reports),
                                          VONAGE_SAMPLE_RATE="16000")
    try:
        caller = VonageCaller(gateway.url)
        report = await caller.run(CallScript(utterances=[speech_like(600, seed=6)]))
        await asyncio.wait_for(gateway.state.idle.wait(), 10)
        await asyncio.wait_for(gateway.state.reports._queue.join(), 10)
        summary = filed_summary(reports)
    finally:
        await runner.cleanup()
    assert report.errors == [] and len(report.turn_latencies_ms) == 1
    rate, left, right = read_stereo(summary["recording"]["file"])
    assert rate == 24000
    frame = 480  # 20 ms at 24 kHz
    sent = np.frombuffer(Resampler(16000, 24000).convert(b"".join(caller.sent_frames)), "<i2")[: len(left)]
    lag, share = best_lag(left, sent, frame, len(sent) - frame, frame)
    assert abs(lag) <= frame and share > 0.99, (lag, share)
    # The answer, all of it (no barge-in), as the session sent it: one run, sample for sample.
    deltas = np.frombuffer(b"".join(base64.b64decode(e["delta"]) for e in gateway.echo.sessions[0].sent
                                    if e["type"].endswith("audio.delta")), "<i2")
    played = np.flatnonzero(right)
    answer = np.flatnonzero(deltas)
    assert len(played) == len(answer) > 0
    assert np.array_equal(right[played[0]: played[-1] + 1], deltas[answer[0]: answer[-1] + 1])
