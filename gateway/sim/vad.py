"""A sans-I/O energy voice-activity detector on G.711 (μ-law or A-law, 8 kHz) or 16-bit PCM.

Fed with chunks of any length, it works in 10 ms windows on one timeline (ms since the first byte
ever fed) and reports speech start/stop with exact positions on it, the way the Realtime server VAD
does: the start includes the prefix padding, the stop is the end of the last voiced window, declared
once `silence_duration_ms` of quiet has followed it. It also keeps the recent input so the caller can
cut an utterance out of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from gateway.sim.audio import ULAW_FORMAT, SimFormat, audioop

WINDOW_MS = 10
TRIM_EVERY_MS = 100
DEFAULT_KEEP_MS = 60_000


def threshold_to_dbfs(threshold: float) -> float:
    """The Realtime `threshold` (0..1) as an energy level: 0 -> -60 dBFS, 0.5 -> -35, 1 -> -10."""
    return -60.0 + 50.0 * threshold


@dataclass(frozen=True, slots=True)
class VadEvent:
    kind: Literal["start", "stop"]
    ms: int  # start: audio_start_ms (prefix included); stop: audio_end_ms (end of last voiced window)
    at_ms: int  # where on the timeline the decision was taken (end of the deciding window)


class EnergyVad:
    """Energy VAD with Realtime `server_vad` semantics; see the module docstring."""

    def __init__(
        self,
        threshold: float = 0.5,
        prefix_padding_ms: int = 300,
        silence_duration_ms: int = 500,
        *,
        keep_ms: int = DEFAULT_KEEP_MS,
        audio_format: SimFormat = ULAW_FORMAT,
    ) -> None:
        self.keep_ms = keep_ms
        self.format = audio_format
        self._bpm = audio_format.bytes_per_ms
        self._window_bytes = WINDOW_MS * self._bpm
        self.configure(threshold, prefix_padding_ms, silence_duration_ms)
        self._buf = bytearray()  # retained input; byte 0 of it is timeline byte `_base`
        self._base = 0
        self._trim_at = 0  # _total at which the next trim is worth its cost
        self._total = 0  # bytes ever fed
        self._processed = 0  # bytes already judged (a multiple of WINDOW_BYTES)
        self.in_speech = False
        self.speech_start_ms: int | None = None  # audio_start_ms of the utterance in progress
        self._last_voiced_end = 0
        self._quiet_ms = 0
        # The owner may pin older audio (e.g. the uncommitted input buffer); inf pins nothing.
        self.retain_from_ms: float = math.inf

    def configure(self, threshold: float, prefix_padding_ms: int, silence_duration_ms: int) -> None:
        """Change the parameters; the timeline, the kept audio and the current state stay."""
        self.threshold = threshold
        self.prefix_padding_ms = int(prefix_padding_ms)
        self.silence_duration_ms = int(silence_duration_ms)
        self._rms_floor = 32768.0 * math.pow(10.0, threshold_to_dbfs(threshold) / 20.0)

    def set_format(self, audio_format: SimFormat) -> None:
        """Decode what is fed from now on as `audio_format`. The timeline is in bytes, so a change is
        taken only before any audio came in (a session's format is set before its first append)."""
        if audio_format != self.format and self._total == 0:
            self.format = audio_format
            self._bpm = audio_format.bytes_per_ms
            self._window_bytes = WINDOW_MS * self._bpm

    @property
    def position_ms(self) -> float:
        """Ms of audio fed so far (the remainder that does not fill a window yet included)."""
        return self._total / self._bpm

    def feed(self, data: bytes) -> list[VadEvent]:
        """Append audio; return the decisions it completes, in timeline order.

        Audio the previous calls no longer needed is dropped first (once another TRIM_EVERY_MS has
        come in since the last trim: the bookkeeping is dearer than the bytes), so whatever this call
        decided (an utterance that just stopped) can still be cut with `audio()` until the next call.
        """
        if self._total >= self._trim_at:
            self._trim()
            self._trim_at = self._total + TRIM_EVERY_MS * self._bpm
        self._buf += data
        self._total += len(data)
        events: list[VadEvent] = []
        window = self._window_bytes
        end = self._total - (self._total - self._processed) % window
        if end > self._processed:
            lo = self._processed - self._base
            pcm = self.format.to_pcm16(bytes(self._buf[lo : end - self._base]))
            step = window * 2 // self.format.sample_bytes
            window_start_ms = self._processed // self._bpm
            for off in range(0, len(pcm), step):
                voiced = audioop.rms(pcm[off : off + step], 2) > self._rms_floor
                self._judge(voiced, window_start_ms, events)
                window_start_ms += WINDOW_MS
            self._processed = end
        return events

    def _judge(self, voiced: bool, start_ms: int, events: list[VadEvent]) -> None:
        end_ms = start_ms + WINDOW_MS
        if voiced:
            self._last_voiced_end = end_ms
            self._quiet_ms = 0
            if not self.in_speech:
                self.in_speech = True
                self.speech_start_ms = max(0, start_ms - self.prefix_padding_ms)
                events.append(VadEvent("start", self.speech_start_ms, end_ms))
        elif self.in_speech:
            self._quiet_ms += WINDOW_MS
            if self._quiet_ms >= self.silence_duration_ms:
                self.in_speech = False
                self.speech_start_ms = None
                events.append(VadEvent("stop", self._last_voiced_end, end_ms))

    def reset_speech(self) -> None:
        """Forget an utterance in progress (after a manual commit or a buffer clear)."""
        self.in_speech = False
        self.speech_start_ms = None
        self._quiet_ms = 0

    def audio(self, start_ms: float, end_ms: float) -> bytes:
        """The kept input in [start_ms, end_ms); parts already dropped or not yet fed are left out."""
        lo = max(self.format.bytes_at(start_ms), self._base)
        hi = min(self.format.bytes_at(end_ms), self._total)
        if hi <= lo:
            return b""
        return bytes(self._buf[lo - self._base : hi - self._base])

    def _trim(self) -> None:
        # What a future cut can still ask for: the utterance in progress, or the prefix padding of the
        # next one, or what the owner pinned; never more than keep_ms, never unjudged bytes.
        if self.in_speech and self.speech_start_ms is not None:
            need_ms = float(self.speech_start_ms)
        else:
            need_ms = self._processed / self._bpm - self.prefix_padding_ms
        need_ms = min(need_ms, self.retain_from_ms)
        need_ms = max(need_ms, self._total / self._bpm - self.keep_ms)
        keep_from = min(self.format.bytes_at(need_ms), self._processed)
        drop = keep_from - self._base
        if drop > 0:
            del self._buf[:drop]  # O(1)-ish: CPython bytearrays shrink from the front in place
            self._base = keep_from
