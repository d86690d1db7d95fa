"""One call's recorder: the media handler's cheap hooks on the audio path, and the write at the end.

On the audio path (`MediaSession`) the recorder only keeps references: the caller's base64 payload as
received and when, the agent's base64 payload as sent to the carrier and when, each clear of the
carrier's playback. Nothing is decoded or copied there: a subtraction, a comparison and an append to a
list and to an `array` (about 0.2 µs a frame). The recording covers at most RECORDINGS_MAX_MINUTES of
the call (the rest is cut when it is written), and what is kept in memory at most the base64 of that
much audio on each channel (about 0.85 MB a minute a channel for G.711, 4 MB at Vonage's 24 kHz):
audio beyond that is not kept. Either way the summary says `truncated` and it is counted.

At the end of the call `finish` hands it all to a worker thread (`writer.write`), which decodes, places
and writes the WAV; a failure there (a full disk, a directory gone) is logged and counted, and the call's
summary says so; it never fails the call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from array import array
from pathlib import Path
from typing import Any

import structlog

from gateway.core.codec import Codec
from gateway.core.events import ClearPlayback, PlayAudio
from gateway.observability import metrics
from gateway.recording.settings import RecordingSettings
from gateway.recording.writer import Take, write

log = structlog.get_logger("gateway.recording")


class Recorder:
    """Keeps one call's audio from the stream's start (`started`, ms on the call's clock)."""

    __slots__ = ("_agent", "_agent_at", "_budget", "_caller", "_caller_at", "_deadline", "call_id", "codec",
                 "day", "directory", "started", "truncated_at")

    def __init__(self, settings: RecordingSettings, call_id: str, codec: Codec, started: float,
                 started_wall: dt.datetime) -> None:
        self.directory: Path = settings.directory
        self.call_id = call_id
        self.codec = codec
        self.started = started
        self.day = started_wall.astimezone(dt.UTC).strftime("%Y-%m-%d")
        max_ms = settings.max_minutes * 60_000.0
        self._deadline = started + max_ms
        # base64 characters of max_ms of audio on both channels (4 per 3 bytes): bounds the memory held
        self._budget = int(2 * max_ms * codec.bytes_per_ms * 4 / 3)
        self._caller_at = array("d")
        self._caller: list[str] = []
        self._agent_at = array("d")
        self._agent: list[str | None] = []
        self.truncated_at: float | None = None

    # --- the audio path: O(1), no decoding, no I/O -------------------------------------------------

    def caller(self, payload: str, now: float) -> None:
        """Caller audio as received from the carrier (base64 in the stream's codec)."""
        budget = self._budget - len(payload)
        if budget < 0:
            self._stop(now)
            return
        self._budget = budget
        self._caller_at.append(now)
        self._caller.append(payload)

    def played(self, action: Any, now: float) -> None:
        """A carrier action just written: agent audio (`PlayAudio`) or a clear of the playback."""
        kind = type(action)
        if kind is PlayAudio:
            payload = action.payload
            budget = self._budget - len(payload)
            if budget < 0:
                self._stop(now)
                return
            self._budget = budget
            self._agent_at.append(now)
            self._agent.append(payload)
        elif kind is ClearPlayback and self.truncated_at is None:
            self._agent_at.append(now)
            self._agent.append(None)

    def _stop(self, now: float) -> None:
        if self.truncated_at is None:
            self.truncated_at = now
            self._budget = -1  # every later chunk is refused at the first test

    def truncated(self, now: float) -> bool:
        """The recording stopped before the call ended: at the cap, or where the audio outgrew it."""
        return self.truncated_at is not None or now > self._deadline

    # --- the end of the call -----------------------------------------------------------------------

    def take(self, now: float) -> Take:
        """What was kept, handed over whole (the recorder keeps nothing of it)."""
        end = min(now, self._deadline) if self.truncated_at is None else min(now, self._deadline, self.truncated_at)
        take = Take(directory=self.directory, day=self.day, call_id=self.call_id, codec=self.codec.name,
                    rate=self.codec.sample_rate, origin_ms=self.started, end_ms=max(self.started, end),
                    caller_at=self._caller_at, caller=self._caller, agent_at=self._agent_at, agent=self._agent)
        self._caller_at, self._caller, self._agent_at, self._agent = array("d"), [], array("d"), []
        return take

    async def finish(self, now: float) -> dict[str, Any]:
        """Write the recording in a worker thread; what the call summary says of it. Never raises
        (but for cancellation)."""
        truncated = self.truncated(now)
        if truncated:
            metrics.RECORDINGS_TRUNCATED.inc()
        take = self.take(now)
        try:
            written = await asyncio.to_thread(write, take)
        except Exception as exc:  # a disk full, a directory gone: the call is not affected
            metrics.RECORDINGS.labels("failed").inc()
            error = f"{type(exc).__name__}: {exc}"
            log.error("recording_failed", error=error, directory=str(self.directory))
            return {"file": None, "error": error, "truncated": truncated}
        metrics.RECORDINGS.labels("written").inc()
        if written.bad_chunks:
            log.warning("recording_chunks_unreadable", chunks=written.bad_chunks,
                        note="audio that was not base64 is left out of the recording")
        log.info("recording_written", file=str(written.path), duration_s=round(written.duration_s, 3),
                 truncated=truncated)
        return {"file": str(written.path), "duration_s": round(written.duration_s, 3), "truncated": truncated}


def recorder_for(settings: RecordingSettings | None, call_id: str, codec: Codec, started: float,
                 started_wall: dt.datetime) -> Recorder | None:
    """The call's recorder, or None when recording is off (RECORDINGS_DIR unset) or the codec is not one
    the writer decodes."""
    if settings is None:
        return None
    if codec.name not in ("pcmu", "pcma", "l16"):
        log.warning("recording_codec_unsupported", codec=codec.name)
        return None
    return Recorder(settings, call_id, codec, started, started_wall)
