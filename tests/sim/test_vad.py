"""EnergyVad: exact decisions on a known timeline, whatever the chunking."""

from __future__ import annotations

import pytest

from gateway.sim.audio import BYTES_PER_MS, rms_dbfs, silence, speech_like, tone
from gateway.sim.vad import EnergyVad, VadEvent, threshold_to_dbfs


def feed_in_chunks(vad: EnergyVad, audio: bytes, chunk_ms: float) -> list[VadEvent]:
    step = max(1, int(chunk_ms * BYTES_PER_MS))
    events: list[VadEvent] = []
    for i in range(0, len(audio), step):
        events += vad.feed(audio[i : i + step])
    return events


TURN = silence(300) + speech_like(600) + silence(700)


def test_threshold_mapping() -> None:
    assert threshold_to_dbfs(0.0) == -60.0
    assert threshold_to_dbfs(0.5) == -35.0
    assert threshold_to_dbfs(1.0) == -10.0


def test_exact_start_and_stop() -> None:
    vad = EnergyVad(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)
    events = feed_in_chunks(vad, TURN, 20)
    # Speech begins at 300 ms (minus 300 ms of padding = 0); the last voiced window ends at 900 ms
    # and the stop is declared 500 ms of quiet later, at 1400 ms.
    assert events == [VadEvent("start", 0, 310), VadEvent("stop", 900, 1400)]
    assert vad.position_ms == 1600
    assert not vad.in_speech


def test_prefix_padding_moves_the_start() -> None:
    vad = EnergyVad(prefix_padding_ms=100, silence_duration_ms=200)
    events = feed_in_chunks(vad, TURN, 20)
    assert events == [VadEvent("start", 200, 310), VadEvent("stop", 900, 1100)]


@pytest.mark.parametrize("chunk_ms", [20, 7, 1000, 0.125, 13.5, 1600])
def test_chunk_size_does_not_matter(chunk_ms: float) -> None:
    vad = EnergyVad()
    assert feed_in_chunks(vad, TURN, chunk_ms) == [VadEvent("start", 0, 310), VadEvent("stop", 900, 1400)]


def test_threshold_is_respected() -> None:
    quiet = tone(400, 440.0, amplitude=0.01)
    level = rms_dbfs(quiet)
    assert -50.0 < level < -35.0  # between the two thresholds used below
    signal = silence(200) + quiet + silence(600)
    assert feed_in_chunks(EnergyVad(threshold=0.5), signal, 20) == []
    sensitive = EnergyVad(threshold=0.2, prefix_padding_ms=0, silence_duration_ms=500)
    assert feed_in_chunks(sensitive, signal, 20) == [VadEvent("start", 200, 210), VadEvent("stop", 600, 1100)]


def test_short_gap_does_not_end_the_turn() -> None:
    signal = silence(100) + speech_like(300) + silence(400) + speech_like(300, seed=1) + silence(600)
    events = feed_in_chunks(EnergyVad(silence_duration_ms=500), signal, 20)
    assert events == [VadEvent("start", 0, 110), VadEvent("stop", 1100, 1600)]


def test_two_turns_and_the_cut() -> None:
    first, second = speech_like(400), speech_like(500, seed=2)
    signal = silence(500) + first + silence(800) + second + silence(600)
    vad = EnergyVad(prefix_padding_ms=200, silence_duration_ms=500)
    vad.retain_from_ms = 0.0
    events = feed_in_chunks(vad, signal, 20)
    assert events == [
        VadEvent("start", 300, 510),
        VadEvent("stop", 900, 1400),
        VadEvent("start", 1500, 1710),
        VadEvent("stop", 2200, 2700),
    ]
    assert vad.audio(300, 900) == signal[300 * 8 : 900 * 8]
    assert vad.audio(1500, 2200) == silence(200) + second


def test_reset_speech_forgets_the_utterance() -> None:
    vad = EnergyVad()
    assert [e.kind for e in vad.feed(silence(100) + speech_like(200))] == ["start"]
    vad.reset_speech()
    assert vad.feed(silence(800)) == []


def test_kept_audio_is_bounded() -> None:
    pinned = EnergyVad(keep_ms=60_000)
    pinned.retain_from_ms = 0.0  # the owner wants everything since the start...
    unpinned = EnergyVad(prefix_padding_ms=300)
    for _ in range(70):
        pinned.feed(silence(1000))
        unpinned.feed(silence(1000))
    assert pinned.position_ms == 70_000
    # Trimming happens before a feed (here each: every chunk is over TRIM_EVERY_MS): keep_ms (or the
    # prefix padding) plus the last chunk stays.
    assert pinned.audio(0, 70_000) == silence(61_000)  # ...but never much more than keep_ms of it
    assert unpinned.audio(0, 70_000) == silence(1_300)  # only what a future prefix could need


def test_small_feeds_are_trimmed_every_100_ms() -> None:
    vad = EnergyVad(prefix_padding_ms=300)
    for _ in range(500):  # 10 s in 20 ms frames
        vad.feed(silence(20))
    kept = len(vad.audio(0, vad.position_ms)) / 8
    assert 300 + 20 <= kept <= 300 + 20 + 100  # the prefix padding, the last frame, and at most the slack


def test_utterance_in_progress_is_kept() -> None:
    vad = EnergyVad(prefix_padding_ms=300, silence_duration_ms=500)
    speech = speech_like(2000)
    feed_in_chunks(vad, silence(5000), 100)
    assert feed_in_chunks(vad, speech, 20) == [VadEvent("start", 4700, 5010)]
    assert vad.audio(4700, 7000) == silence(300) + speech  # 2.3 s, far more than the prefix
    assert vad.feed(silence(600)) == [VadEvent("stop", 7000, 7500)]
    assert vad.audio(4700, 7000) == silence(300) + speech  # still there until the next feed


def test_reconfigure_keeps_the_timeline() -> None:
    vad = EnergyVad()
    vad.feed(silence(250))
    vad.configure(threshold=0.5, prefix_padding_ms=0, silence_duration_ms=100)
    events = vad.feed(speech_like(300) + silence(200))
    assert events == [VadEvent("start", 250, 260), VadEvent("stop", 550, 650)]
