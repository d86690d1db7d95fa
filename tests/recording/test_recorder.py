"""The recorder: what it keeps on the audio path, its bounds, and the write at the end of the call."""

from __future__ import annotations

import base64
import datetime as dt
import wave
from pathlib import Path

import pytest

from gateway.core.codec import PCMU, l16
from gateway.core.events import ClearPlayback, PlayAudio, SendMark
from gateway.observability import metrics
from gateway.recording.recorder import Recorder, recorder_for
from gateway.recording.settings import RecordingSettings
from gateway.recording.writer import render

FRAME = base64.b64encode(b"\x7f" * 160).decode()  # 20 ms of μ-law: 216 characters
WALL = dt.datetime(2026, 5, 12, 23, 59, 59, tzinfo=dt.UTC)


def count(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels or {}) or 0.0


def recorder(directory: Path, max_minutes: float = 30.0, started: float = 5000.0) -> Recorder:
    return Recorder(RecordingSettings(directory, max_minutes), "CA1", PCMU, started, WALL)


def test_off_without_settings_and_for_a_codec_it_cannot_decode(tmp_path: Path):
    assert recorder_for(None, "CA1", PCMU, 0.0, WALL) is None
    opus = type(PCMU)("opus", 48000, 6.0)
    assert recorder_for(RecordingSettings(tmp_path), "CA1", opus, 0.0, WALL) is None
    assert isinstance(recorder_for(RecordingSettings(tmp_path), "CA1", l16(24000), 0.0, WALL), Recorder)


def test_it_keeps_references_and_times_only(tmp_path: Path):
    rec = recorder(tmp_path)
    rec.caller(FRAME, 5020.0)
    rec.played(PlayAudio(FRAME), 5030.0)
    rec.played(SendMark("0.1"), 5031.0)  # not audio: nothing kept
    rec.played(ClearPlayback(), 5040.0)
    take = rec.take(5100.0)
    assert take.caller[0] is FRAME and list(take.caller_at) == [5020.0]
    assert take.agent == [FRAME, None] and list(take.agent_at) == [5030.0, 5040.0]
    assert (take.origin_ms, take.end_ms, take.day, take.rate) == (5000.0, 5100.0, "2026-05-12", 8000)
    assert rec.take(5100.0).caller == []  # handed over whole


def test_it_stops_at_the_maximum_duration(tmp_path: Path):
    rec = recorder(tmp_path, max_minutes=0.1)  # 6 s
    for k in range(400):  # 8 s of frames
        rec.caller(FRAME, 5000.0 + 20.0 * (k + 1))
    rec.played(PlayAudio(FRAME), 11_500.0)
    assert not rec.truncated(11_000.0) and rec.truncated(11_000.1)
    take = rec.take(13_000.0)
    assert take.end_ms == 11_000.0  # 6 s in: what comes after is cut when it is written
    out, _ = render(take)
    assert out.samples == 6 * 8000


def test_it_stops_when_the_audio_kept_reaches_its_bound(tmp_path: Path):
    """A flood of audio faster than real time stops the recording at the bound, not the memory."""
    rec = recorder(tmp_path, max_minutes=0.1)  # 2 channels x 6 s of base64 μ-law: 128,000 characters
    for _ in range(1000):
        rec.played(PlayAudio(FRAME), 5100.0)  # 20 s of audio in one moment
    assert rec.truncated_at == 5100.0
    assert len(rec.take(5200.0).agent) == 128_000 // len(FRAME)


async def test_finish_writes_the_file_and_says_so(tmp_path: Path):
    before = count("gateway_recordings_total", {"result": "written"})
    rec = recorder(tmp_path)
    for k in range(50):
        rec.caller(FRAME, 5000.0 + 20.0 * (k + 1))
    summary = await rec.finish(6000.0)
    assert summary == {"file": str(tmp_path / "2026-05-12" / "CA1.wav"), "duration_s": 1.0, "truncated": False}
    with wave.open(summary["file"], "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (2, 8000, 8000)
    assert count("gateway_recordings_total", {"result": "written"}) == before + 1


async def test_a_truncated_recording_is_counted(tmp_path: Path):
    before = count("gateway_recordings_truncated_total")
    rec = recorder(tmp_path, max_minutes=0.1)
    rec.caller(FRAME, 20_000.0)
    summary = await rec.finish(21_000.0)
    assert summary["truncated"] is True and summary["duration_s"] == pytest.approx(6.0)
    assert count("gateway_recordings_truncated_total") == before + 1


async def test_a_failed_write_is_counted_and_reported_not_raised(tmp_path: Path):
    before = count("gateway_recordings_total", {"result": "failed"})
    (tmp_path / "2026-05-12").write_text("a file where the day's directory goes")
    rec = recorder(tmp_path)
    rec.caller(FRAME, 5020.0)
    summary = await rec.finish(5100.0)
    assert summary["file"] is None and summary["truncated"] is False
    assert summary["error"].startswith(("FileExistsError", "NotADirectoryError"))
    assert count("gateway_recordings_total", {"result": "failed"}) == before + 1
