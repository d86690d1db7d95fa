"""Audio helpers for the offline peers: signals, energy, writing WAV files (reading them: `wav.py`).

Mostly G.711 μ-law; `SimFormat` converts to and from A-law and 16-bit PCM.

The gateway itself never decodes audio; only the simulators and the bench do.
"""

from __future__ import annotations

import base64
import math
import warnings
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

with warnings.catch_warnings():  # Python 3.11/3.12 warn that the stdlib module goes away in 3.13
    warnings.simplefilter("ignore", DeprecationWarning)
    try:  # 3.13+ gets the same module from audioop-lts
        import audioop
    except ImportError:  # pragma: no cover - depends on the interpreter
        raise ImportError("audioop is missing: on Python 3.13+ install audioop-lts") from None

SAMPLE_RATE = 8000
BYTES_PER_MS = 8  # μ-law, 8 kHz, 1 byte per sample
FRAME_MS = 20
FRAME_BYTES = FRAME_MS * BYTES_PER_MS
SILENCE_BYTE = 0xFF


@dataclass(frozen=True, slots=True)
class SimFormat:
    """An audio format the offline peers speak: G.711 μ-law or A-law at 8 kHz, or 16-bit PCM (the
    Realtime `audio/pcm` at 24 kHz, a converting carrier's L16 at 8 or 16 kHz)."""

    name: str  # pcmu | pcma | pcm
    sample_rate: int
    sample_bytes: int  # 1 (G.711) or 2 (16-bit linear, little-endian)

    @property
    def bytes_per_ms(self) -> int:
        return self.sample_rate * self.sample_bytes // 1000

    def bytes_at(self, ms: float) -> int:
        """The byte offset of `ms` into audio in this format, on a sample boundary."""
        return int(ms * self.sample_rate / 1000.0) * self.sample_bytes

    def to_pcm16(self, data: bytes) -> bytes:
        """16-bit linear samples at this format's rate."""
        if self.name == "pcmu":
            return audioop.ulaw2lin(data, 2)
        if self.name == "pcma":
            return audioop.alaw2lin(data, 2)
        return data[: len(data) - len(data) % 2]

    def from_pcm16(self, pcm: bytes, rate: int) -> bytes:
        """16-bit linear samples at `rate` in this format (resampled when the rates differ)."""
        if rate != self.sample_rate and pcm:
            pcm, _ = audioop.ratecv(pcm, 2, 1, rate, self.sample_rate, None)
        if self.name == "pcmu":
            return audioop.lin2ulaw(pcm, 2)
        if self.name == "pcma":
            return audioop.lin2alaw(pcm, 2)
        return pcm


ULAW_FORMAT = SimFormat("pcmu", 8000, 1)
ALAW_FORMAT = SimFormat("pcma", 8000, 1)
PCM24_FORMAT = SimFormat("pcm", 24000, 2)


def l16_format(sample_rate: int) -> SimFormat:
    return SimFormat("pcm", sample_rate, 2)


def convert(data: bytes, src: SimFormat, dst: SimFormat) -> bytes:
    """Audio from one format to another (the same bytes when they are equal)."""
    if src == dst:
        return data
    return dst.from_pcm16(src.to_pcm16(data), src.sample_rate)


def silence(ms: int) -> bytes:
    """μ-law digital silence of the given length."""
    return bytes([SILENCE_BYTE]) * (ms * BYTES_PER_MS)


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    return audioop.lin2ulaw(pcm, 2)


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    return audioop.ulaw2lin(ulaw, 2)


def tone(ms: int, freq_hz: float = 440.0, amplitude: float = 0.3) -> bytes:
    """A sine tone as μ-law; amplitude is a fraction of full scale."""
    n = ms * BYTES_PER_MS
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    samples = (amplitude * 32767.0 * np.sin(2.0 * math.pi * freq_hz * t)).astype("<i2")
    return pcm16_to_ulaw(samples.tobytes())


def speech_like(ms: int, seed: int = 0, amplitude: float = 0.3) -> bytes:
    """A voiced, syllable-shaped test signal (harmonics under a 4 Hz envelope) as μ-law."""
    n = ms * BYTES_PER_MS
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    f0 = 120.0 + 40.0 * (seed % 5)
    signal = sum(np.sin(2.0 * math.pi * f0 * k * t) / k for k in range(1, 6))
    envelope = 0.55 + 0.45 * np.abs(np.sin(2.0 * math.pi * 2.0 * t + seed))
    peak = float(np.max(np.abs(signal))) or 1.0
    samples = (amplitude * 32767.0 * signal * envelope / peak).astype("<i2")
    return pcm16_to_ulaw(samples.tobytes())


def rms_dbfs(ulaw: bytes) -> float:
    """Energy of a μ-law chunk in dB relative to full scale (-inf for empty or digital silence)."""
    if not ulaw:
        return float("-inf")
    rms = audioop.rms(ulaw_to_pcm16(ulaw), 2)
    if rms <= 0:
        return float("-inf")
    return 20.0 * math.log10(rms / 32768.0)


SPEECH_DBFS = -35.0  # the echo line's VAD at its default threshold (0.5) calls louder 10 ms windows speech


def trailing_quiet_ms(ulaw: bytes, dbfs: float = SPEECH_DBFS) -> float:
    """How much of the end of `ulaw` is quiet (10 ms windows at or below `dbfs`); 0 when none of it is louder."""
    window = 10 * BYTES_PER_MS
    end = len(ulaw)
    while end > 0:
        start = max(0, end - window)
        if rms_dbfs(ulaw[start:end]) > dbfs:
            return (len(ulaw) - end) / BYTES_PER_MS
        end = start
    return 0.0  # nothing voiced: there is no end of speech to measure from


def frames(ulaw: bytes, frame_bytes: int = FRAME_BYTES) -> list[bytes]:
    """Split audio into carrier-sized frames; the last one is padded with silence."""
    out = [ulaw[i : i + frame_bytes] for i in range(0, len(ulaw), frame_bytes)]
    if out and len(out[-1]) < frame_bytes:
        out[-1] = out[-1] + bytes([SILENCE_BYTE]) * (frame_bytes - len(out[-1]))
    return out


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def write_ulaw_as_wav(path: str | Path, ulaw: bytes) -> None:
    """Write μ-law audio as a 16-bit PCM 8 kHz mono WAV that any player opens."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(ulaw_to_pcm16(ulaw))
