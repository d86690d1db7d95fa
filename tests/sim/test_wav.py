"""`call --audio`: WAV files of every common shape, written byte by byte here, read as 8 kHz mono μ-law."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest

from gateway.sim.audio import audioop, rms_dbfs, silence, speech_like, trailing_quiet_ms, ulaw_to_pcm16
from gateway.sim.wav import SUBFORMAT_TAIL, read_wav_as_ulaw

FREQ_HZ, AMPLITUDE, DURATION_S = 440.0, 0.5, 0.25
PCM, FLOAT, ALAW, MULAW, ADPCM, EXTENSIBLE = 1, 3, 6, 7, 2, 0xFFFE


def sine(rate: int, freq: float = FREQ_HZ, amplitude: float = AMPLITUDE, seconds: float = DURATION_S) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return amplitude * np.sin(2.0 * math.pi * freq * t)


def encode(x: np.ndarray, tag: int, bits: int) -> bytes:
    """Interleaved float samples in [-1, 1] as the sample bytes of a WAV's data chunk."""
    flat = x.ravel()
    if tag == FLOAT:
        return flat.astype("<f4" if bits == 32 else "<f8").tobytes()
    pcm16 = np.clip(np.round(flat * 32767), -32768, 32767).astype("<i2").tobytes()
    if tag == MULAW:
        return audioop.lin2ulaw(pcm16, 2)
    if tag == ALAW:
        return audioop.lin2alaw(pcm16, 2)
    if bits == 8:
        return np.clip(np.round(flat * 127) + 128, 0, 255).astype(np.uint8).tobytes()
    full = np.clip(np.round(flat * (2 ** (bits - 1) - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype("<i8")
    return b"".join(int(v).to_bytes(bits // 8, "little", signed=True) for v in full) if bits == 24 \
        else full.astype("<i2" if bits == 16 else "<i4").tobytes()


def wav_bytes(samples: bytes, *, tag: int, bits: int, rate: int, channels: int, extensible: bool = False,
              data_size: int | None = None, extra_chunk: bool = True) -> bytes:
    block = channels * bits // 8 if bits >= 8 else 256
    fmt = struct.pack("<HHIIHH", EXTENSIBLE if extensible else tag, channels, rate, rate * block, block, bits)
    if extensible:  # cbSize 22: valid bits, channel mask, subformat GUID
        fmt += struct.pack("<HHI", 22, bits, (1 << channels) - 1) + struct.pack("<H", tag) + SUBFORMAT_TAIL
    elif tag != PCM:
        fmt += struct.pack("<H", 0)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:  # a chunk before the audio, odd-sized so it carries a pad byte: readers must skip it
        chunks += b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\x00"
    size = len(samples) if data_size is None else data_size
    chunks += b"data" + struct.pack("<I", size) + samples + (b"\x00" if len(samples) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def decoded(ulaw: bytes) -> np.ndarray:
    return np.frombuffer(ulaw_to_pcm16(ulaw), "<i2").astype(np.float64) / 32768.0


def relative_error(got: np.ndarray, want: np.ndarray, edge: int = 0) -> float:
    assert len(got) == len(want)
    g, w = got[edge : len(got) - edge], want[edge : len(want) - edge]
    return float(np.sqrt(np.mean((g - w) ** 2)) / np.sqrt(np.mean(w**2)))


CASES = [  # (id, tag, bits, rate, channels, extensible, tolerance)
    ("pcm8", PCM, 8, 8000, 1, False, 0.05),
    ("pcm16", PCM, 16, 8000, 1, False, 0.03),
    ("pcm24", PCM, 24, 8000, 1, False, 0.03),
    ("pcm32", PCM, 32, 8000, 1, False, 0.03),
    ("float32", FLOAT, 32, 8000, 1, False, 0.03),
    ("float64", FLOAT, 64, 8000, 1, False, 0.03),
    ("mulaw", MULAW, 8, 8000, 1, False, 0.03),
    ("alaw", ALAW, 8, 8000, 1, False, 0.05),
    ("extensible-pcm24", PCM, 24, 8000, 1, True, 0.03),
    ("extensible-float32", FLOAT, 32, 8000, 1, True, 0.03),
    ("extensible-mulaw", MULAW, 8, 8000, 1, True, 0.03),
    ("stereo-pcm16", PCM, 16, 8000, 2, False, 0.03),
    ("pcm16-16k", PCM, 16, 16000, 1, False, 0.03),
    ("pcm16-44k1", PCM, 16, 44100, 1, False, 0.03),
    ("stereo-pcm24-44k1-extensible", PCM, 24, 44100, 2, True, 0.03),
    ("float32-48k-stereo", FLOAT, 32, 48000, 2, False, 0.03),
    ("mulaw-16k", MULAW, 8, 16000, 1, False, 0.05),
]


@pytest.mark.parametrize(("tag", "bits", "rate", "channels", "extensible", "tolerance"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_format_reads_as_the_source_at_8k_mono(tmp_path: Path, tag: int, bits: int, rate: int, channels: int,
                                                extensible: bool, tolerance: float) -> None:
    left = sine(rate)
    # Stereo: the right channel at half level, so the mono mix (the mean) is 0.75 of the left one.
    x = np.stack([left, 0.5 * left], axis=1) if channels == 2 else left[:, None]
    path = tmp_path / "in.wav"
    path.write_bytes(wav_bytes(encode(x, tag, bits), tag=tag, bits=bits, rate=rate, channels=channels,
                               extensible=extensible))
    got = decoded(read_wav_as_ulaw(path))
    want = sine(8000) * (0.75 if channels == 2 else 1.0)
    edge = 0 if rate == 8000 else 80  # the low-pass sees the file's ends as silence: 10 ms each side
    assert relative_error(got, want, edge) < tolerance


def test_mulaw_8k_mono_passes_through_byte_for_byte(tmp_path: Path) -> None:
    ulaw = speech_like(500)
    path = tmp_path / "call.wav"
    path.write_bytes(wav_bytes(ulaw, tag=MULAW, bits=8, rate=8000, channels=1))
    assert read_wav_as_ulaw(path) == ulaw


def test_downsampling_filters_out_what_would_fold_into_the_band(tmp_path: Path) -> None:
    """A 6 kHz tone cannot be carried at 8 kHz; without the low-pass it would come out as a 2 kHz tone."""
    path = tmp_path / "high.wav"
    x = sine(44100, freq=6000.0)[:, None]
    path.write_bytes(wav_bytes(encode(x, PCM, 16), tag=PCM, bits=16, rate=44100, channels=1))
    ulaw = read_wav_as_ulaw(path)
    assert rms_dbfs(ulaw[80:-80]) < rms_dbfs(audioop.lin2ulaw(encode(sine(8000)[:, None], PCM, 16), 2)) - 40


def test_a_data_size_never_filled_in_reads_to_the_end(tmp_path: Path) -> None:
    """Writers that stream (to a pipe) leave the data size 0 or too large."""
    body = encode(sine(8000)[:, None], PCM, 16)
    for size in (0, 0xFFFFFFFF):
        path = tmp_path / f"stream-{size}.wav"
        path.write_bytes(wav_bytes(body, tag=PCM, bits=16, rate=8000, channels=1, data_size=size, extra_chunk=False))
        assert len(read_wav_as_ulaw(path)) == len(body) // 2


@pytest.mark.parametrize(("data", "message"), [
    (wav_bytes(b"\x00" * 512, tag=ADPCM, bits=4, rate=8000, channels=1), "Microsoft ADPCM (format 2 = 0x0002)"),
    (wav_bytes(b"\x00" * 512, tag=0x11, bits=4, rate=8000, channels=1), "IMA ADPCM (format 17 = 0x0011)"),
    (wav_bytes(b"\x00" * 512, tag=0x55, bits=8, rate=8000, channels=1), "MPEG Layer 3"),
    (wav_bytes(b"\x00" * 512, tag=0x1234, bits=8, rate=8000, channels=1), "unknown (format 4660 = 0x1234)"),
    (wav_bytes(b"\x00" * 512, tag=ADPCM, bits=4, rate=8000, channels=1, extensible=True),
     "extensible WAV with subformat Microsoft ADPCM"),
    (wav_bytes(b"\x00" * 60, tag=PCM, bits=12, rate=8000, channels=1)[:-60]
     .replace(b"data", b"junk"), "no data chunk"),
    (b"ID3\x04" + b"\x00" * 100, "not a WAV file"),
    (b"RIFX" + b"\x00" * 4 + b"WAVE", "RIFX WAV files are not supported"),
    (wav_bytes(b"", tag=PCM, bits=16, rate=8000, channels=1), "no audio"),
])
def test_unsupported_or_broken_files_say_what_they_are(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(data)
    with pytest.raises(ValueError) as caught:
        read_wav_as_ulaw(path)
    assert message in str(caught.value)


def test_unknown_extensible_guid_is_refused(tmp_path: Path) -> None:
    data = bytearray(wav_bytes(encode(sine(8000)[:, None], PCM, 16), tag=PCM, bits=16, rate=8000, channels=1,
                               extensible=True))
    tail = data.index(SUBFORMAT_TAIL)
    data[tail : tail + 4] = b"\xde\xad\xbe\xef"
    path = tmp_path / "guid.wav"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="unknown subformat GUID"):
        read_wav_as_ulaw(path)


def test_trailing_quiet_is_measured_in_10_ms_windows() -> None:
    assert trailing_quiet_ms(speech_like(400) + silence(300)) == 300.0
    assert trailing_quiet_ms(speech_like(400)) == 0.0
    assert trailing_quiet_ms(silence(500)) == 0.0  # no speech: nothing to measure from
