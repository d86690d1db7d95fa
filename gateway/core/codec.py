"""Audio codecs as the core sees them: how many bytes one millisecond takes, and base64 arithmetic.

The one place that knows bytes per millisecond. The carrier names the codec in its start message,
the Realtime face names it in the session configuration, and the `Call` measures audio with it,
never decoding a payload: the length of a base64 string says how much audio it carries.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Codec:
    """`name` is a bounded label: pcmu, pcma (G.711, 1 byte per sample) or l16 (16-bit linear PCM)."""

    name: str
    sample_rate: int
    bytes_per_ms: float

    @property
    def g711(self) -> bool:
        """Passed through untouched to a Realtime session (audio/pcmu, audio/pcma)."""
        return self.name in ("pcmu", "pcma")


PCMU = Codec("pcmu", 8000, 8.0)  # G.711 μ-law, 8 kHz
PCMA = Codec("pcma", 8000, 8.0)  # G.711 A-law, 8 kHz


def l16(sample_rate: int) -> Codec:
    """16-bit signed little-endian mono PCM at `sample_rate`."""
    return Codec("l16", sample_rate, sample_rate * 2 / 1000.0)


def b64_size(payload: str) -> int:
    """Decoded size of a base64 string from its length alone: no decoding."""
    n = len(payload)
    if n < 4:
        return 0
    return (n >> 2) * 3 - (payload[-1] == "=") - (payload[-2] == "=")


def b64_audio_ms(payload: str, bytes_per_ms: float = 8.0) -> float:
    """Duration of base64 audio; G.711 (8 bytes per ms) unless told otherwise."""
    return b64_size(payload) / bytes_per_ms
