"""What the caller has actually heard: a model of the carrier's playback queue.

Assistant audio is sent to the carrier faster than real time; the carrier queues it and plays it at
real time, echoing each of our marks when the audio before it has played. The tracker keeps the
audio sent since the last `clear` as one timeline ("queue position", in ms), anchors that timeline
on the latest mark echo, and between echoes advances it at real time, waiting for audio that had not
arrived yet (a playback underrun). From the position it derives how much of each assistant item the
caller heard, which is what `conversation.item.truncate` must say on barge-in.

Mark names carry a generation id: `clear` bumps the generation, so the marks the carrier flushes
(and echoes) on `clear` are recognised as not played.

For a carrier that has no marks (`marks=False`) the tracker never asks for one: the position is the
clock estimate alone (real-time playout from when each chunk was sent, waiting for late audio), and
what is estimated played is pruned as audio goes out, so the work stays bounded.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Chunk:
    item_id: str
    start: float  # queue position where this chunk starts, ms
    end: float  # queue position where it ends, ms
    sent_at: float  # when it was sent to the carrier, ms


@dataclass(slots=True)
class ItemPlayback:
    """One assistant item's audio in the current playback generation."""

    item_id: str
    content_index: int
    response_id: str | None
    sent_ms: float = 0.0
    played_base_ms: float = 0.0  # audio of chunks already known to be played (pruned)
    audio_done: bool = False
    chunks: deque[_Chunk] = field(default_factory=deque)


@dataclass(frozen=True, slots=True)
class HeardItem:
    item_id: str
    content_index: int
    response_id: str | None
    heard_ms: float
    sent_ms: float
    audio_done: bool


class PlaybackTracker:
    def __init__(self, mark_interval_ms: float = 100.0, *, marks: bool = True) -> None:
        self.mark_interval_ms = mark_interval_ms
        self.marks = marks
        self.generation = 0
        self._seq = 0
        # When the audio sent so far finished (or, without marks, will finish) playing: the echo of the mark
        # that emptied the queue, or the clock estimate. 0 until some audio has played; kept across a clear.
        self.ended_at = 0.0
        self._reset()

    def _reset(self) -> None:
        self._queued_ms = 0.0  # end of the timeline: all audio sent this generation
        self._marked_ms = 0.0  # where the last mark sits on the timeline
        self._anchor_pos = 0.0  # position confirmed by the latest mark echo
        self._anchor_at: float | None = None  # when that echo arrived
        self._chunks: deque[_Chunk] = deque()
        self._pending_marks: deque[tuple[int, float]] = deque()  # (mark seq, queue position), in send order
        self._items: dict[str, ItemPlayback] = {}

    # --- audio going out -------------------------------------------------------------------------

    def sent(
        self, item_id: str, ms: float, now: float, *, content_index: int = 0, response_id: str | None = None,
        mark: bool | None = None,
    ) -> str | None:
        """Record `ms` of audio of `item_id` sent to the carrier. Returns the name of a mark to send after
        it, or None. By default an item's first chunk is marked, then one chunk per `mark_interval_ms`:
        between echoes the position follows playback at real time, so more marks add messages, not
        precision. Without marks: always None."""
        if not self.marks:
            self._advance(now)
            mark = False
            self.ended_at = max(self.ended_at, now) + ms  # played at real time, after what was queued
        item = self._items.get(item_id)
        if item is None:
            item = self._items[item_id] = ItemPlayback(item_id, content_index, response_id)
            if mark is None:
                mark = True
        start = self._queued_ms
        self._queued_ms = end = start + ms
        chunk = _Chunk(item_id, start, end, now)
        self._chunks.append(chunk)
        item.chunks.append(chunk)
        item.sent_ms += ms
        if mark is None:
            mark = end - self._marked_ms >= self.mark_interval_ms
        return self.mark() if mark else None

    def mark(self) -> str:
        """A mark at the end of the audio sent so far; its echo confirms everything before it played."""
        self._seq += 1
        self._pending_marks.append((self._seq, self._queued_ms))
        self._marked_ms = self._queued_ms
        return f"{self.generation}.{self._seq}"

    @property
    def unmarked_ms(self) -> float:
        """Audio sent since the last mark."""
        return self._queued_ms - self._marked_ms

    def audio_done(self, item_id: str) -> None:
        item = self._items.get(item_id)
        if item is not None:
            item.audio_done = True
            if not item.chunks:
                del self._items[item_id]  # already fully heard

    # --- what the carrier tells us ---------------------------------------------------------------

    def mark_echoed(self, name: str, now: float) -> bool:
        """A mark came back. True when it confirms played audio; False for flushed or unknown marks."""
        gen, _, seq = name.partition(".")
        if gen != str(self.generation) or not seq.isdigit():
            return False
        wanted = int(seq)
        pending = self._pending_marks
        # Marks come back in order; an earlier one still pending was lost, and is played by now.
        while pending and pending[0][0] < wanted:
            pending.popleft()
        if not pending or pending[0][0] != wanted:
            return False
        pos = pending.popleft()[1]
        if pos >= self._anchor_pos:
            self._anchor_pos, self._anchor_at = pos, now
            self._prune(pos)
        if not pending and self._marked_ms >= self._queued_ms:
            self.ended_at = now  # everything sent has played
        return True

    def _advance(self, now: float) -> None:
        """Clock mode: take the estimate at `now` as confirmed (it is all there is) and prune behind it."""
        pos = self.position(now)
        if pos > self._anchor_pos:
            self._anchor_pos, self._anchor_at = pos, now
            self._prune(pos)

    def _prune(self, pos: float) -> None:
        chunks = self._chunks
        while chunks and chunks[0].end <= pos:
            chunk = chunks.popleft()
            item = self._items[chunk.item_id]
            item.chunks.popleft()
            item.played_base_ms += chunk.end - chunk.start
            if item.audio_done and not item.chunks:
                del self._items[item.item_id]  # fully heard: nothing left to truncate

    # --- estimates -------------------------------------------------------------------------------

    def position(self, now: float) -> float:
        """Estimated queue position (ms of this generation's audio played) at `now`."""
        pos, at = self._anchor_pos, self._anchor_at
        for chunk in self._chunks:
            if chunk.end <= pos:
                continue
            start = chunk.sent_at if at is None else max(at, chunk.sent_at)
            if now <= start:
                break
            play = min(chunk.end - pos, now - start)
            pos += play
            at = start + play
            if pos < chunk.end:
                break
        return pos

    def remaining_ms(self, now: float) -> float:
        """Audio sent but not yet played by the estimate at `now` (what a goodbye still has to go)."""
        return max(0.0, self._queued_ms - self.position(now))

    def is_playing(self, now: float) -> bool:
        """True while audio is queued at the carrier, by estimate or by marks not yet echoed."""
        if not self.marks:
            return self.position(now) < self._queued_ms
        return bool(self._pending_marks) or self._marked_ms < self._queued_ms or self.position(now) < self._queued_ms

    def heard(self, now: float) -> list[HeardItem]:
        """Per item of this generation: how much the caller heard by `now`, never more than was sent."""
        pos = self.position(now)
        out = []
        for item in self._items.values():
            heard = item.played_base_ms
            for chunk in item.chunks:
                if pos <= chunk.start:
                    break
                heard += min(pos, chunk.end) - chunk.start
            out.append(
                HeardItem(item.item_id, item.content_index, item.response_id, min(heard, item.sent_ms),
                          item.sent_ms, item.audio_done)
            )
        return out

    def clear(self, now: float | None = None) -> None:
        """Playback was cleared at the carrier (at `now`): start a new generation; pending marks become stale."""
        self.generation += 1
        if now is not None:
            self.ended_at = min(self.ended_at, now)  # what was queued will never play
        self._reset()
