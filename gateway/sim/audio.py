"""G.711 μ-law helpers for the offline peers: signals, energy, writing WAV files (reading them: `wav.py`).

The gateway itself never decodes audio; only the simulators and the bench do.
"""

from __future__ import annotations

import base64
import math
import warnings
import wave
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
