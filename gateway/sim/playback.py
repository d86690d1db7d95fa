"""Sans-I/O model of Twilio's outbound playback for a bidirectional Media Stream.

Twilio semantics (protocol reference §4.4):

- outbound ``media`` payloads of any size are queued and played in order, in real time (8 bytes = 1 ms);
- a ``mark`` is echoed when all audio queued before it has finished playing, at once if nothing is queued;
- ``clear`` empties the queue immediately and echoes every pending mark ("flushed", not "played").

The model never reads a clock: every method takes ``now`` (ms, float) from the caller, which must not go
backwards. Playback of a chunk starts at ``max(arrival, end of the queued audio)``; audio arriving while idle
starts playing at its arrival time. Playback is "busy" on the half-open interval ``[start, end)``: audio
arriving exactly when the queue runs dry starts a new segment.

A *segment* is a run of continuous playback: it starts when audio starts playing from idle and ends when the
queue runs dry (``cleared=False``) or is cleared (``cleared=True``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BYTES_PER_MS = 8
_EPS = 1e-6


def _bytes_for(ms: float) -> int:
    """Whole bytes played in ``ms`` of playback (floor, tolerant to float noise)."""
    if ms <= 0:
        return 0
    return math.floor(ms * BYTES_PER_MS + _EPS)


@dataclass(frozen=True)
class Segment:
    start_ms: float
    end_ms: float  # for the current segment: when the queued audio will finish, if not cleared
    played_ms: float  # for the current segment: played so far
    cleared: bool = False


@dataclass
class _Chunk:
    start_ms: float
    data: bytes
    kept: int | None = None  # bytes actually played when the chunk was cut by a clear

    def played_bytes(self, now: float) -> int:
        limit = len(self.data) if self.kept is None else self.kept
        return min(limit, _bytes_for(now - self.start_ms))


class TwilioPlayback:
    """Twilio's outbound audio queue, with the current time passed in."""

    def __init__(self) -> None:
        self._chunks: list[_Chunk] = []
        self._pending: list[tuple[float, str]] = []  # (due_ms, name), due times non-decreasing
        self._busy_until: float | None = None  # end of the queued audio (None: nothing ever played)
        self._seg_start: float | None = None  # start of the current segment
        self.segments: list[Segment] = []  # finished segments, oldest first
        self.marks_echoed: list[str] = []  # echoed because their audio played
        self.marks_flushed: list[str] = []  # echoed by a clear
        self.bytes_enqueued = 0

    # ----------------------------------------------------------------- queries
    @property
    def busy_until_ms(self) -> float | None:
        """When the queued audio finishes (or finished) playing; None if nothing was ever queued."""
        return self._busy_until

    def is_playing(self, now: float) -> bool:
        return self._busy_until is not None and now < self._busy_until

    def idle_ms(self, now: float) -> float:
        """How long playback has been idle at ``now`` (0 while playing, ``inf`` if nothing ever played)."""
        if self._busy_until is None:
            return math.inf
        return max(0.0, now - self._busy_until)

    def queued_ms(self, now: float) -> float:
        """Audio still waiting to be played at ``now``."""
        return max(0.0, self._busy_until - now) if self._busy_until is not None else 0.0

    def next_due_ms(self) -> float | None:
        """When the next pending mark becomes due (None if no mark is pending)."""
        return self._pending[0][0] if self._pending else None

    def pending_marks(self) -> list[str]:
        return [name for _, name in self._pending]

    def current_segment(self, now: float) -> Segment | None:
        """The segment playing at ``now`` (None when idle)."""
        self._settle(now)
        if self._seg_start is None or self._busy_until is None:
            return None
        return Segment(self._seg_start, self._busy_until, now - self._seg_start, False)

    def finished_segments(self, now: float) -> list[Segment]:
        self._settle(now)
        return list(self.segments)

    def played_audio(self, now: float) -> bytes:
        """Everything actually played by ``now``, concatenated (idle gaps not included)."""
        return b"".join(c.data[: c.played_bytes(now)] for c in self._chunks)

    def played_timeline(self, now: float, origin_ms: float = 0.0) -> bytes:
        """What a listener heard from ``origin_ms`` to ``now``: played audio in place, idle as 0xFF."""
        out = bytearray(b"\xff" * _bytes_for(now - origin_ms))
        for c in self._chunks:
            played = c.data[: c.played_bytes(now)]
            if not played:
                continue
            at = round((c.start_ms - origin_ms) * BYTES_PER_MS)
            if at < 0:
                played, at = played[-at:], 0
            played = played[: max(0, len(out) - at)]
            out[at : at + len(played)] = played
        return bytes(out)

    # ---------------------------------------------------------------- commands
    def enqueue_audio(self, audio: bytes, now: float) -> float:
        """Queue outbound audio; return the time (ms) at which it starts playing."""
        if not audio:
            return max(now, self._busy_until or now)
        if self.is_playing(now):
            start = self._busy_until
            assert start is not None
        else:
            self._settle(now)
            start = now
            self._seg_start = now
        self._chunks.append(_Chunk(start, bytes(audio)))
        self._busy_until = start + len(audio) / BYTES_PER_MS
        self.bytes_enqueued += len(audio)
        return start

    def enqueue_mark(self, name: str, now: float) -> list[str]:
        """Queue a mark; return the marks to echo now (earlier marks now due, then this one if idle)."""
        due = self.advance(now)
        if self.is_playing(now):
            assert self._busy_until is not None
            self._pending.append((self._busy_until, name))
        else:
            due.append(name)
            self.marks_echoed.append(name)
        return due

    def advance(self, now: float) -> list[str]:
        """Marks whose audio has finished playing by ``now``, in order (each returned once)."""
        self._settle(now)
        n = 0
        while n < len(self._pending) and self._pending[n][0] <= now:
            n += 1
        due = [name for _, name in self._pending[:n]]
        del self._pending[:n]
        self.marks_echoed.extend(due)
        return due

    def clear(self, now: float) -> tuple[list[str], float]:
        """Twilio ``clear``: drop queued audio now and flush pending marks.

        Returns the flushed marks (all marks not yet due; marks already due by ``now`` were played and stay
        for ``advance``, so call ``advance(now)`` first) and the ms of the current segment played at the
        clear (0.0 when nothing was playing).
        """
        flushed = [name for due, name in self._pending if due > now]
        self._pending = [(due, name) for due, name in self._pending if due <= now]
        self.marks_flushed.extend(flushed)
        if not self.is_playing(now):
            self._settle(now)
            return flushed, 0.0
        assert self._seg_start is not None
        played_ms = now - self._seg_start
        kept: list[_Chunk] = []
        for c in self._chunks:
            if c.start_ms >= now:
                continue  # never started: dropped
            if c.start_ms + len(c.data) / BYTES_PER_MS > now:
                c.kept = c.played_bytes(now)
            kept.append(c)
        self._chunks = kept
        self.segments.append(Segment(self._seg_start, now, played_ms, True))
        self._seg_start = None
        self._busy_until = now
        return flushed, played_ms

    # ---------------------------------------------------------------- internal
    def _settle(self, now: float) -> None:
        """Close the current segment if its audio ran out by ``now``."""
        if self._seg_start is not None and self._busy_until is not None and self._busy_until <= now:
            self.segments.append(
                Segment(self._seg_start, self._busy_until, self._busy_until - self._seg_start, False)
            )
            self._seg_start = None
