"""Writing one call's recording: decode what the recorder kept, place it (`timeline`), write the WAV.

Runs in a worker thread (`Recorder.finish` hands it over with `asyncio.to_thread`): it decodes base64
and G.711, builds the stereo buffer and writes the file, none of which may run on the event loop.

The file is `<RECORDINGS_DIR>/<YYYY-MM-DD>/<call id>.wav` (the call's start date, UTC; the call id
reduced to letters, digits, `.`, `_` and `-`; `-2`, `-3`... when the name is taken), 16-bit stereo PCM
at the stream codec's rate (8 kHz for G.711; 24 kHz for Vonage, whose audio the gateway converts to the
session's rate), mode 0o640 (less if the umask says so). It is written as `.wav.part` and renamed when
complete, so a reader never sees half a file.
"""

from __future__ import annotations

import binascii
import contextlib
import os
import re
import sys
import warnings
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.core.codec import b64_size
from gateway.recording.timeline import Stereo, caller_starts, place_agent, sample_at

with warnings.catch_warnings():  # Python 3.12 warns that the stdlib module goes away in 3.13
    warnings.simplefilter("ignore", DeprecationWarning)
    try:  # 3.13+ gets the same module from audioop-lts (a dependency there)
        import audioop
    except ImportError:  # pragma: no cover - depends on the interpreter
        raise ImportError("audioop is missing: on Python 3.13+ install audioop-lts") from None

FILE_MODE = 0o640
DIR_MODE = 0o750
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_LITTLE = sys.byteorder == "little"


@dataclass(frozen=True)
class Take:
    """What one call's recorder kept; times in ms on the call's clock, `origin_ms` the stream's start."""

    directory: Path
    day: str  # YYYY-MM-DD of the call's start
    call_id: str
    codec: str  # pcmu | pcma | l16
    rate: int
    origin_ms: float  # the start of the recording: the stream's start
    end_ms: float  # the end of the recording: the call's end, or where the cap stopped it
    caller_at: Sequence[float]
    caller: Sequence[str]  # base64, as received
    agent_at: Sequence[float]
    agent: Sequence[str | None]  # base64 as sent to the carrier; None: playback cleared


@dataclass(frozen=True)
class Written:
    path: Path
    duration_s: float
    bad_chunks: int  # chunks that were not valid base64 (left out)


def file_name(call_id: str) -> str:
    """A call id as a file name: never a path, never hidden, never empty."""
    name = _UNSAFE.sub("_", call_id).strip("._")[:128]
    return name or "call"


def decoder(codec: str) -> Callable[[bytes], bytes]:
    """Raw audio of `codec` -> 16-bit samples in native byte order."""
    if codec == "pcmu":
        return lambda data: audioop.ulaw2lin(data, 2)
    if codec == "pcma":
        return lambda data: audioop.alaw2lin(data, 2)
    if codec == "l16":  # little-endian on the wire
        return (lambda data: data) if _LITTLE else (lambda data: audioop.byteswap(data, 2))
    raise ValueError(f"no decoder for codec {codec!r}")


def _decoded(times: Sequence[float], payloads: Sequence[str | None], origin: float,
             decode: Callable[[bytes], bytes], bad: list[int]) -> Iterator[tuple[float, bytes | None]]:
    for at, payload in zip(times, payloads, strict=True):
        if payload is None:
            yield at - origin, None
            continue
        try:
            yield at - origin, decode(binascii.a2b_base64(payload, strict_mode=True))
        except (binascii.Error, ValueError, audioop.error):
            bad[0] += 1


def render(take: Take) -> tuple[Stereo, int]:
    """The stereo timeline of `take` and the number of chunks left out (not base64)."""
    decode, bad, origin, rate = decoder(take.codec), [0], take.origin_ms, take.rate
    out = Stereo(sample_at(take.end_ms - origin, rate))
    width = 2 if take.codec == "l16" else 1  # bytes per sample on the wire
    lengths = [b64_size(payload) // width for payload in take.caller]  # a chunk not decoded stays silence
    starts = caller_starts([at - origin for at in take.caller_at], lengths, rate)
    for start, payload in zip(starts, take.caller, strict=True):
        if start >= out.samples:
            break
        try:
            out.put(0, start, decode(binascii.a2b_base64(payload, strict_mode=True)))
        except (binascii.Error, ValueError, audioop.error):
            bad[0] += 1
    place_agent(out, _decoded(take.agent_at, take.agent, origin, decode, bad), rate)
    return out, bad[0]


def _free_path(folder: Path, name: str) -> Path:
    path, n = folder / f"{name}.wav", 1
    while path.exists() or path.with_name(path.name + ".part").exists():
        n += 1
        path = folder / f"{name}-{n}.wav"
    return path


def write(take: Take) -> Written:
    """Render and write `take` (blocking: run it in a worker thread). Raises OSError when the disk does."""
    out, bad = render(take)
    folder = take.directory / take.day
    folder.mkdir(mode=DIR_MODE, exist_ok=True)
    path = _free_path(folder, file_name(take.call_id))
    part = path.with_name(path.name + ".part")
    frames = out.buffer if _LITTLE else audioop.byteswap(bytes(out.buffer), 2)
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as f, wave.open(f, "wb") as wav:
            wav.setnchannels(2)
            wav.setsampwidth(2)
            wav.setframerate(take.rate)
            wav.writeframes(frames)
        os.replace(part, path)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    return Written(path, out.samples / take.rate, bad)
