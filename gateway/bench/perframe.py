"""The per-frame path without sockets: decode, decide, encode, timed per frame.

`python -m gateway.bench.perframe` times one caller frame (the carrier's stream face decodes a Twilio
media frame, the `Call` decides, the Realtime face encodes the append) and one answer delta (the
Realtime face decodes it, the `Call` decides and marks, the stream face encodes media and mark) with
`timeit`, best of many rounds. It isolates what the gateway itself adds per frame from the sockets and
the event loop; the load bench (`python -m gateway bench`) measures the whole. On a noisy machine pin it
(`taskset -c 1`) and compare runs made back to back.

`--recording` adds the call recorder's hooks as the media handler calls them when RECORDINGS_DIR is set
(`recording.recorder.Recorder`: the caller frame kept, the answer chunk and its mark offered to it).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import tempfile
import timeit
from pathlib import Path

import orjson

from gateway.carriers.twilio.stream import TwilioStream
from gateway.config import Agent
from gateway.core.call import Call
from gateway.core.codec import PCMU
from gateway.core.events import CallerAudio, ResponseCreated
from gateway.realtime.face import RealtimeFace
from gateway.recording.recorder import Recorder
from gateway.recording.settings import RecordingSettings


def measure(number: int = 100_000, repeat: int = 15, recording: bool = False) -> dict[str, float]:
    """Microseconds per frame, best of `repeat` rounds of `number` frames, each direction; with the
    recorder's hooks when `recording` (it keeps references only: nothing is written)."""
    stream = TwilioStream()
    stream.decode(orjson.dumps({"event": "start", "start": {"streamSid": "MZ1", "callSid": "CA1", "mediaFormat": {
        "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
    face = RealtimeFace("ga", Agent())
    call = Call(max_frames_per_second=150)
    call.upstream_opened(0.0)
    call.upstream_event(ResponseCreated("r1"), 0.0)
    payload = base64.b64encode(b"\x7f" * 160).decode()
    frame = orjson.dumps({"event": "media", "streamSid": "MZ1", "media": {
        "track": "inbound", "chunk": "1", "timestamp": "5", "payload": payload}})
    delta = orjson.dumps({"type": "response.output_audio.delta", "event_id": "e", "response_id": "r1",
                          "item_id": "A", "output_index": 0, "content_index": 0, "delta": payload})
    clock = [0.0]
    settings = RecordingSettings(Path(tempfile.gettempdir()), max_minutes=1440.0)  # never reached here
    recorder = Recorder(settings, "CA1", PCMU, 0.0, dt.datetime.now(dt.UTC)) if recording else None

    def inbound() -> None:
        clock[0] += 20.0
        event = stream.decode(frame)
        if type(event) is CallerAudio:
            if recorder is not None:
                recorder.caller(event.payload, clock[0])
            for action in call.carrier_audio(event.payload, clock[0]):
                face.encode(action)

    def outbound() -> None:
        clock[0] += 20.0
        for action in call.upstream_event(face.decode(delta), clock[0]):
            stream.encode(action)
            if recorder is not None:
                recorder.played(action, clock[0])

    return {name: min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6
            for name, fn in (("inbound", inbound), ("outbound", outbound))}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.bench.perframe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=100_000, help="frames per round (default 100000)")
    parser.add_argument("--repeat", type=int, default=15, help="rounds; the best is reported (default 15)")
    parser.add_argument("--recording", action="store_true", help="with the call recorder's hooks")
    args = parser.parse_args()
    for name, us in measure(args.number, args.repeat, args.recording).items():
        print(f"{name:8s} {us:6.3f} µs per frame")


if __name__ == "__main__":
    main()
