"""Sample-rate conversion between Vonage's L16 stream (8 or 16 kHz) and the Realtime session's 24 kHz PCM.

Both sides are 16-bit signed little-endian mono PCM (Vonage WebSockets guide: "Linear PCM 16-bit, with
either a 8kHz or a 16kHz sample rate, and a 20ms frame size", 320 or 640 bytes a message,
https://developer.vonage.com/en/voice/voice-api/concepts/websockets; OpenAI Realtime `audio/pcm` at 24 kHz),
so converting is resampling alone. It is done with `audioop.ratecv` (linear interpolation, in C, with its
state carried from one call to the next), measured against numpy on this path (`python -m
gateway.bench.convert`, a 2.8 GHz Xeon): ratecv takes 3-7 µs of CPU per 20 ms frame, a numpy 48-tap FIR
18-37 µs and numpy linear interpolation 12-14 µs. ratecv does no anti-alias filtering: going down from 24 kHz, what the
answer holds above the new Nyquist frequency (8 kHz at 16 kHz, 4 kHz at 8 kHz) folds back; speech has
little energy there, and a 16 kHz stream keeps it small.

Each direction of each call has its own converter, so the interpolation runs on across frames: no click
at a frame boundary and no drift. The state starts primed (as if one zero sample came first), which makes
every 20 ms frame in give exactly 20 ms out: 320 or 640 bytes in, 960 out; 960 in, 640 or 320 out. The
price is a fixed delay of one input sample (62.5 µs at 16 kHz, 125 µs at 8 kHz, 42 µs at 24 kHz).

`Outbound` also cuts the converted audio into Vonage's exact 20 ms frames, holding back the partial frame
until more audio comes (`push`) or the answer ends (`flush`, padded with silence); `reset` drops it with
the resampler's state (a clear).
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():  # Python 3.12 warns that the stdlib module goes away in 3.13
    warnings.simplefilter("ignore", DeprecationWarning)
    try:  # 3.13+ gets the same module from audioop-lts (a dependency there)
        import audioop
    except ImportError:  # pragma: no cover - depends on the interpreter
        raise ImportError("audioop is missing: on Python 3.13+ install audioop-lts") from None

REALTIME_RATE = 24000
FRAME_MS = 20
SAMPLE_BYTES = 2


def frame_bytes(rate: int) -> int:
    """Bytes of one 20 ms L16 frame at `rate`: 320 at 8 kHz, 640 at 16 kHz, 960 at 24 kHz."""
    return rate * FRAME_MS // 1000 * SAMPLE_BYTES


def _primed(in_rate: int, out_rate: int) -> tuple:
    """ratecv's state after one zero sample: from there on, n input samples give exactly n * out / in."""
    return audioop.ratecv(b"\0\0", SAMPLE_BYTES, 1, in_rate, out_rate, None)[1]


class Resampler:
    """One direction of one call: 16-bit mono PCM from `in_rate` to `out_rate`, state kept across calls."""

    __slots__ = ("_carry", "_initial", "_state", "in_rate", "out_rate")

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError("sample rates must be positive")
        self.in_rate, self.out_rate = in_rate, out_rate
        self._initial = _primed(in_rate, out_rate)
        self._state = self._initial
        self._carry = b""  # an odd byte left over: half a sample, completed by the next call

    def convert(self, pcm: bytes) -> bytes:
        """`pcm` resampled, continuing where the last call stopped."""
        if self._carry:
            pcm = self._carry + pcm
            self._carry = b""
        if len(pcm) & 1:
            self._carry = pcm[-1:]
            pcm = pcm[:-1]
        if not pcm:
            return b""
        out, self._state = audioop.ratecv(pcm, SAMPLE_BYTES, 1, self.in_rate, self.out_rate, self._state)
        return out

    def reset(self) -> None:
        """Forget the audio so far (the next call starts afresh, as the first one did)."""
        self._state = self._initial
        self._carry = b""


class Outbound:
    """The answer's 24 kHz audio → the carrier's rate, in whole 20 ms frames, a partial one held back."""

    __slots__ = ("_held", "frame", "resampler")

    def __init__(self, carrier_rate: int, source_rate: int = REALTIME_RATE) -> None:
        self.resampler = Resampler(source_rate, carrier_rate)
        self.frame = frame_bytes(carrier_rate)
        self._held = b""

    @property
    def held(self) -> int:
        """Bytes of converted audio held back: less than one frame."""
        return len(self._held)

    def push(self, pcm: bytes) -> list[bytes]:
        """Convert `pcm` and return the whole frames it completes, in order (maybe none)."""
        data = self._held + self.resampler.convert(pcm)
        size = self.frame
        whole = len(data) - len(data) % size
        self._held = data[whole:]
        return [data[i : i + size] for i in range(0, whole, size)]

    def flush(self) -> bytes | None:
        """The held partial frame padded with silence to a whole frame (None when nothing is held). The
        answer has ended: the resampler starts afresh for the next one."""
        held, self._held = self._held, b""
        self.resampler.reset()
        if not held:
            return None
        return held + b"\0" * (self.frame - len(held))

    def reset(self) -> None:
        """Drop the held audio and the resampler's state (playback was cleared)."""
        self._held = b""
        self.resampler.reset()
