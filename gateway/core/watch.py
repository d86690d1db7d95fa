"""Small clocks of the call's housekeeping, pure and tested on a fake clock: the caller's frame-rate
window and the send-buffer stall watch. Times are milliseconds on a monotonic clock."""

from __future__ import annotations


class FrameRate:
    """At most `limit` frames per one-second window (0: no limit); the window starts at the first frame
    after the previous one ended."""

    __slots__ = ("_end", "_frames", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit or 1 << 62
        self._end = float("-inf")
        self._frames = 0

    def allow(self, now: float) -> bool:
        if now >= self._end:
            self._end, self._frames = now + 1000.0, 0
        self._frames += 1
        return self._frames <= self.limit


class StallWatch:
    """A socket whose send buffer stays backed up for `timeout_ms` without a break has stalled."""

    __slots__ = ("_since", "timeout_ms")

    def __init__(self, timeout_ms: float) -> None:
        self.timeout_ms = timeout_ms
        self._since: float | None = None

    def update(self, backed_up: bool, now: float) -> float | None:
        """How long it has been backed up, once that reaches the timeout; None before (or when it drains)."""
        if not backed_up:
            self._since = None
            return None
        if self._since is None:
            self._since = now
        stalled = now - self._since
        return stalled if stalled >= self.timeout_ms else None

    def reset(self) -> None:
        self._since = None
