"""The Vonage audio conversion, measured with numpy: durations exact to the sample over many frames, a 1 kHz
tone's level within 0.6 dB and its frequency within 0.5 Hz in every direction, state carried across calls
(chunked = whole, bit for bit), whole 20 ms frames out, the partial frame held and flushed padded."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gateway.carriers.vonage.convert import Outbound, Resampler, frame_bytes

DIRECTIONS = [(16000, 24000), (8000, 24000), (24000, 16000), (24000, 8000)]
SECONDS = 10  # 500 frames


def tone(rate: int, seconds: float, freq: float = 1000.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * 32767 * np.sin(2 * math.pi * freq * t)).astype("<i2")


def db(x: np.ndarray) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))))


def peak_hz(x: np.ndarray, rate: int) -> float:
    """The frequency of the spectrum's peak, refined by parabolic interpolation between bins."""
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(x)


def frames_of(x: np.ndarray, rate: int) -> list[bytes]:
    data, size = x.tobytes(), frame_bytes(rate)
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_frame_sizes():
    assert [frame_bytes(r) for r in (8000, 16000, 24000)] == [320, 640, 960]


@pytest.mark.parametrize(("src", "dst"), DIRECTIONS)
def test_every_20_ms_frame_gives_exactly_20_ms(src: int, dst: int):
    resampler = Resampler(src, dst)
    outs = [resampler.convert(frame) for frame in frames_of(tone(src, SECONDS), src)]
    assert len(outs) == SECONDS * 50
    assert {len(out) for out in outs} == {frame_bytes(dst)}  # every frame, the first one included
    assert sum(len(out) for out in outs) // 2 == SECONDS * dst  # the whole, to the sample


@pytest.mark.parametrize(("src", "dst"), DIRECTIONS)
def test_a_tone_keeps_its_level_and_frequency(src: int, dst: int):
    resampler = Resampler(src, dst)
    x = tone(src, SECONDS)
    y = np.frombuffer(b"".join(resampler.convert(f) for f in frames_of(x, src)), "<i2")
    assert abs(db(y) - db(x)) <= 0.6, (db(x), db(y))  # linear interpolation's roll-off at 1 kHz: 0.0-0.5 dB
    assert abs(peak_hz(y, dst) - 1000.0) <= 0.5
    assert abs(peak_hz(x, src) - 1000.0) <= 0.5  # the measure itself
    # No click at frame boundaries: the largest step between samples stays that of a clean 1 kHz sine.
    limit = 0.3 * 32767 * 2 * math.sin(math.pi * 1000.0 / dst) * 1.05 + 2
    assert np.max(np.abs(np.diff(y.astype(np.int32)))) <= limit


@pytest.mark.parametrize(("src", "dst"), DIRECTIONS)
def test_the_state_carries_across_calls(src: int, dst: int):
    """Converting in pieces of any size (odd byte counts too) gives the same bytes as converting at once."""
    x = tone(src, 2.0, freq=440.0).tobytes()
    whole = Resampler(src, dst).convert(x)
    rng = np.random.default_rng(src + dst)
    pieces, at = Resampler(src, dst), 0
    out = []
    while at < len(x):
        n = int(rng.integers(1, 3000))
        out.append(pieces.convert(x[at : at + n]))
        at += n
    assert b"".join(out) == whole


def test_reset_starts_afresh():
    x = tone(16000, 0.1, freq=440.0).tobytes()
    used = Resampler(24000, 16000)
    used.convert(tone(24000, 0.05).tobytes() + b"\x01")  # state and a carried odd byte
    used.reset()
    assert used.convert(x) == Resampler(24000, 16000).convert(x)


def test_without_an_anti_alias_filter_a_tone_above_the_new_nyquist_folds_back():
    """The documented limitation of ratecv (module docstring): 10 kHz at 24 kHz, taken to 16 kHz, lands at 6 kHz."""
    y = np.frombuffer(Resampler(24000, 16000).convert(tone(24000, 1.0, freq=10000.0).tobytes()), "<i2")
    assert abs(peak_hz(y, 16000) - 6000.0) <= 1.0


@pytest.mark.parametrize("rate", [16000, 8000])
def test_outbound_cuts_whole_frames_and_holds_the_rest(rate: int):
    x = tone(24000, 3.013, freq=440.0).tobytes()  # 150 frames and 13 ms
    reference = Resampler(24000, rate).convert(x)
    out = Outbound(rate)
    rng = np.random.default_rng(rate)
    frames, at = [], 0
    while at < len(x):
        n = int(rng.integers(1, 9000))  # answer chunks of any size, odd ones too
        got = out.push(x[at : at + n])
        assert all(len(f) == frame_bytes(rate) for f in got)
        assert 0 <= out.held < frame_bytes(rate)
        frames += got
        at += n
    held = out.held
    assert held == frame_bytes(rate) * 13 // 20
    assert b"".join(frames) == reference[: len(reference) - held]  # in order, nothing lost or doubled
    tail = out.flush()
    assert tail is not None and len(tail) == frame_bytes(rate)
    assert tail == reference[len(reference) - held :] + b"\0" * (frame_bytes(rate) - held)  # padded with silence
    assert out.held == 0 and out.flush() is None


def test_a_partial_frame_waits_for_more_audio():
    out = Outbound(16000)
    assert out.push(tone(24000, 0.015).tobytes()) == []  # 15 ms: less than a frame
    assert out.held == 480  # 15 ms at 16 kHz
    got = out.push(tone(24000, 0.010).tobytes())  # 25 ms in all: one frame, 5 ms held
    assert len(got) == 1 and out.held == 160


def test_flush_and_reset_start_the_next_answer_afresh():
    x = tone(24000, 0.1, freq=440.0).tobytes()
    fresh = Outbound(8000).push(x)
    out = Outbound(8000)
    out.push(tone(24000, 0.013).tobytes())
    out.flush()
    assert out.push(x) == fresh
    out.push(tone(24000, 0.013).tobytes())
    assert out.held
    out.reset()  # a clear: the held audio is dropped, not sent
    assert out.held == 0 and out.push(x) == fresh
