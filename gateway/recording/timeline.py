"""Where each piece of a call's audio goes in its recording: the two channels on one sample timeline.

Pure arithmetic on decoded 16-bit samples, no I/O, no clock: times are milliseconds from the
recording's start (the stream's start), positions are sample indexes at the recording's rate.

- **The caller** (left) is one continuous stream: each chunk follows the one before it, as the carrier
  sent it, without a gap, from the stream's start. A chunk is spoken before it is sent, so its arrival
  says where it started at the latest (arrival - its length); network jitter and a busy event loop
  only ever make a chunk late, never early. So the least lateness of a chunk and of every chunk after
  it is how far the stream really is behind its continuous line: a late burst that the following
  chunks catch up on shifts nothing, while audio the carrier never sent (a stream whose audio starts
  late, a carrier that skipped some) leaves every later chunk late by as much, and becomes silence
  where it is missing (when it exceeds `GAP_MS`; less is taken as latency, not a gap).
- **The agent** (right) is placed by the playback model the core assumes (`core/playback.py`, the
  carrier's queue): a chunk starts playing at max(when it was sent, when the audio queued before it
  ends), at real time; a clear at time t drops everything not yet played at t, so a barge-in cuts the
  right channel where the caller stopped hearing the agent.

Both channels are written into one interleaved stereo buffer (`Stereo`): the first sample is the
caller's, the second the agent's, as WAV wants them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

GAP_MS = 100.0  # caller audio missing for longer than this becomes silence; less is latency


def sample_at(ms: float, rate: int) -> int:
    """The sample index of `ms` at `rate` (rounded to the nearest sample)."""
    return round(ms * rate / 1000.0)


class Stereo:
    """`samples` frames of interleaved 16-bit stereo (native byte order), silent until placed."""

    __slots__ = ("_view", "buffer", "samples")

    def __init__(self, samples: int) -> None:
        self.samples = max(0, samples)
        self.buffer = bytearray(self.samples * 4)
        self._view = memoryview(self.buffer).cast("h")

    def put(self, channel: int, start: int, pcm: bytes) -> int:
        """Write 16-bit samples `pcm` on `channel` (0 left, 1 right) from frame `start`, cut at the end;
        returns how many were written."""
        n = min(len(pcm) // 2, self.samples - start)
        if n <= 0 or start < 0:
            return 0
        view = self._view
        begin = 2 * start + channel
        view[begin:begin + 2 * n:2] = memoryview(pcm).cast("B")[:2 * n].cast("h")
        return n

    def silence(self, channel: int, start: int, end: int) -> None:
        """Zero `channel` on frames [start, end)."""
        start, end = max(0, start), min(end, self.samples)
        if end > start:
            begin = 2 * start + channel
            self._view[begin:2 * end + channel:2] = memoryview(bytes(2 * (end - start))).cast("h")

    def channel(self, channel: int) -> bytes:
        """One channel's samples, as bytes (for tests and checks)."""
        return self._view[channel::2].tobytes()


def caller_starts(arrivals: Sequence[float], lengths: Sequence[int], rate: int, gap_ms: float = GAP_MS) -> list[int]:
    """Where each of the caller's chunks starts (sample index), given when each arrived (ms, in order)
    and how many samples it holds."""
    count = len(arrivals)
    continuous, pos = [0] * count, 0
    for i in range(count):
        continuous[i] = pos
        pos += lengths[i]
    # How far each chunk's arrival puts it behind its continuous place; the least of it from each chunk
    # on (a suffix minimum) is how far the stream is behind there, jitter aside.
    behind = [0] * count
    least = None
    for i in range(count - 1, -1, -1):
        late = sample_at(arrivals[i], rate) - lengths[i] - continuous[i]
        least = late if least is None or late < least else least
        behind[i] = least
    starts, offset, gap = [0] * count, 0, sample_at(gap_ms, rate)
    for i in range(count):
        if behind[i] - offset > gap:  # audio missing before this chunk: silence in its place
            offset = behind[i]
        starts[i] = continuous[i] + offset
    return starts


def place_agent(out: Stereo, events: Iterable[tuple[float, bytes | None]], rate: int) -> int:
    """The agent's audio as the caller heard it on the right channel: `(sent ms, samples)` for a chunk
    sent to the carrier, `(ms, None)` for a clear, in the order they happened. Returns the frame
    where the agent's queued audio ends (after the last clear's cut)."""
    queue_end = 0
    for at, pcm in events:
        now = sample_at(at, rate)
        if pcm is None:
            if queue_end > now:  # not yet played at the clear: never heard
                out.silence(1, now, queue_end)
                queue_end = now
            continue
        start = now if now > queue_end else queue_end
        out.put(1, start, pcm)
        queue_end = start + len(pcm) // 2
    return queue_end
