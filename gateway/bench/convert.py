"""The CPU cost of Vonage's audio conversion, per 20 ms frame, next to the μ-law passthrough faces (Twilio's,
Plivo's, Telnyx's; SignalWire's is Twilio's).

`python -m gateway.bench.convert` reports CPU microseconds (`time.process_time`, best of several rounds)
per 20 ms frame in each direction, and the CPU-seconds one call-second costs (50 frames each way):

- the stream faces alone: Twilio (JSON in and out, the base64 payload untouched) and Vonage at 8 and
  16 kHz (binary L16 in → resampled to 24 kHz and base64-encoded; an answer chunk base64-decoded →
  resampled → cut into 20 ms frames), answer chunks of 20 ms and of 100 ms;
- the whole per-frame path (stream face, `Call`, Realtime face), as `gateway.bench.perframe` times it;
- the resampler alone, `audioop.ratecv` (what `carriers.vonage.convert` uses) against two numpy
  implementations (a polyphase windowed-sinc FIR and linear interpolation), the measurement behind that
  choice.

On a noisy machine pin it (`taskset -c 1`) and compare runs made back to back.
"""

from __future__ import annotations

import argparse
import base64
import math
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import orjson

from gateway.carriers.plivo.stream import PlivoStream
from gateway.carriers.telnyx.stream import TelnyxStream
from gateway.carriers.twilio.stream import TwilioStream
from gateway.carriers.vonage.convert import Resampler, audioop
from gateway.carriers.vonage.stream import VonageStream
from gateway.config import Agent
from gateway.core.call import Call
from gateway.core.codec import PCMU, Codec, l16
from gateway.core.events import CallerAudio, PlayAudio, ResponseCreated
from gateway.realtime.face import RealtimeFace

CALL_UUID = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
FRAMES_PER_SECOND = 50


def cpu_us(fn: Callable[[], object], number: int, repeat: int, per: int = 1) -> float:
    """CPU microseconds per call of `fn` divided by `per`, best of `repeat` rounds of `number` calls."""
    fn()
    best = math.inf
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, time.process_time() - start)
    return best / number / per * 1e6


def tone(rate: int, ms: int, freq: float = 440.0) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (0.3 * 32767 * np.sin(2 * math.pi * freq * t)).astype("<i2").tobytes()


def vonage_face(rate: int) -> VonageStream:
    face = VonageStream(rate)
    face.decode(orjson.dumps({"event": "websocket:connected", "content-type": f"audio/l16;rate={rate}",
                              "call_uuid": CALL_UUID, "token": "t"}))
    return face


def twilio_face() -> TwilioStream:
    face = TwilioStream()
    face.decode(orjson.dumps({"event": "start", "start": {"streamSid": "MZ1", "callSid": "CA1", "mediaFormat": {
        "encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
    return face


PLIVO_START = {"event": "start", "sequenceNumber": 1, "start": {
    "callId": CALL_UUID, "streamId": CALL_UUID, "accountId": "MAZDG3NDBLNTQ2ZWFKMJ",
    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}}, "extra_headers": ""}
TELNYX_START = {"event": "start", "sequence_number": "1", "stream_id": CALL_UUID, "start": {
    "user_id": CALL_UUID, "call_control_id": "v3:" + "a" * 54, "custom_parameters": {},
    "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}}}


def passthrough_faces() -> dict[str, tuple[object, bytes]]:
    """The other μ-law passthrough faces, started, and one inbound media frame of each."""
    ulaw = base64.b64encode(b"\x7f" * 160).decode()
    plivo, telnyx = PlivoStream(), TelnyxStream()
    plivo.decode(orjson.dumps(PLIVO_START))
    telnyx.decode(orjson.dumps(TELNYX_START))
    return {
        "plivo μ-law passthrough": (plivo, orjson.dumps({"event": "media", "sequenceNumber": 2, "streamId": CALL_UUID,
                                                         "media": {"track": "inbound", "timestamp": "1700000000000",
                                                                   "chunk": 1, "payload": ulaw}})),
        "telnyx μ-law passthrough": (telnyx, orjson.dumps({"event": "media", "sequence_number": "2",
                                                           "stream_id": CALL_UUID, "media": {
                                                               "track": "inbound", "chunk": "1", "timestamp": "5",
                                                               "payload": ulaw}})),
    }


def faces(number: int, repeat: int) -> dict[str, tuple[float, float, float]]:
    """Per stream face: (in, out with 20 ms chunks, out with 100 ms chunks), µs per 20 ms frame."""
    out = {}
    twilio = twilio_face()
    ulaw = base64.b64encode(b"\x7f" * 160).decode()
    media = orjson.dumps({"event": "media", "streamSid": "MZ1", "media": {"track": "inbound", "chunk": "1",
                                                                          "timestamp": "5", "payload": ulaw}})
    ulaw100 = PlayAudio(base64.b64encode(b"\x7f" * 800).decode())
    out["twilio μ-law passthrough"] = (
        cpu_us(lambda: twilio.decode(media), number, repeat),
        cpu_us(lambda: twilio.encode(PlayAudio(ulaw)), number, repeat),
        cpu_us(lambda: twilio.encode(ulaw100), number, repeat, per=5))
    for name, (face, frame) in passthrough_faces().items():
        assert type(face.decode(frame)) is CallerAudio, name  # type: ignore[attr-defined]
        out[name] = (
            cpu_us(lambda face=face, frame=frame: face.decode(frame), number, repeat),  # type: ignore[attr-defined]
            cpu_us(lambda face=face: face.encode(PlayAudio(ulaw)), number, repeat),  # type: ignore[attr-defined]
            cpu_us(lambda face=face: face.encode(ulaw100), number, repeat, per=5))  # type: ignore[attr-defined]
    pcm20, pcm100 = PlayAudio(base64.b64encode(tone(24000, 20)).decode()), PlayAudio(
        base64.b64encode(tone(24000, 100)).decode())
    for rate in (16000, 8000):
        face = vonage_face(rate)
        frame = tone(rate, 20)
        out[f"vonage L16 {rate // 1000} kHz ⇄ 24 kHz"] = (
            cpu_us(lambda face=face, frame=frame: face.decode_binary(frame), number, repeat),
            cpu_us(lambda face=face: face.encode(pcm20), number, repeat),
            cpu_us(lambda face=face: face.encode(pcm100), number, repeat, per=5))
    return out


def whole_path(number: int, repeat: int) -> dict[str, tuple[float, float]]:
    """(in, out) µs per 20 ms frame through stream face, `Call` and Realtime face (answer chunks of 20 ms)."""
    out = {}
    for name, codec in (("twilio μ-law passthrough", PCMU), ("vonage L16 16 kHz ⇄ 24 kHz", l16(24000)),
                        ("vonage L16 8 kHz ⇄ 24 kHz", l16(24000))):
        out[name] = _path(name, codec, number, repeat)
    return out


def _path(name: str, codec: Codec, number: int, repeat: int) -> tuple[float, float]:
    rate = 8000 if "8 kHz" in name else 16000
    stream = vonage_face(rate) if name.startswith("vonage") else twilio_face()
    face = RealtimeFace("ga", Agent(), codec)
    call = Call(max_frames_per_second=150, whole_frames=name.startswith("vonage"), codec=codec)
    call.upstream_opened(0.0)
    call.upstream_event(ResponseCreated("r1"), 0.0)
    if name.startswith("vonage"):
        frame_in: bytes = tone(rate, 20)
        decode = stream.decode_binary
        delta_payload = base64.b64encode(tone(24000, 20)).decode()
    else:
        payload = base64.b64encode(b"\x7f" * 160).decode()
        frame_in = orjson.dumps({"event": "media", "streamSid": "MZ1", "media": {
            "track": "inbound", "chunk": "1", "timestamp": "5", "payload": payload}})
        decode = stream.decode
        delta_payload = payload
    delta = orjson.dumps({"type": "response.output_audio.delta", "event_id": "e", "response_id": "r1",
                          "item_id": "A", "output_index": 0, "content_index": 0, "delta": delta_payload})
    clock = [0.0]

    def inbound() -> None:
        clock[0] += 20.0
        event = decode(frame_in)
        if type(event) is CallerAudio:
            for action in call.carrier_audio(event.payload, clock[0]):
                face.encode(action)

    def outbound() -> None:
        clock[0] += 20.0
        for action in call.upstream_event(face.decode(delta), clock[0]):
            stream.encode(action)

    return cpu_us(inbound, number, repeat), cpu_us(outbound, number, repeat)


def _lowpass(taps: int, cutoff: float) -> np.ndarray:
    n = np.arange(taps) - (taps - 1) / 2
    h = np.sinc(2 * cutoff * n) * 2 * cutoff * np.kaiser(taps, 8.0)
    return h / h.sum()


class NumpyFir:
    """Rational resampling by `up`/`down` with a 48-tap windowed-sinc polyphase-equivalent FIR (zero-stuff,
    filter, decimate), state kept across calls: the quality alternative to ratecv (it filters aliases)."""

    def __init__(self, in_rate: int, out_rate: int, taps: int = 48) -> None:
        g = math.gcd(in_rate, out_rate)
        self.up, self.down = out_rate // g, in_rate // g
        self.h = (_lowpass(taps, 0.5 / max(self.up, self.down)) * self.up).astype(np.float32)
        self.hist = np.zeros(taps - 1, np.float32)
        self.phase = 0

    def convert(self, pcm: bytes) -> bytes:
        x = np.frombuffer(pcm, "<i2").astype(np.float32)
        xu = np.zeros(len(x) * self.up, np.float32)
        xu[:: self.up] = x
        buf = np.concatenate((self.hist, xu))
        y = np.convolve(buf, self.h, "valid")[self.phase :: self.down]
        self.phase = (self.phase - len(xu)) % self.down
        self.hist = buf[len(buf) - len(self.hist) :]
        return np.clip(y, -32768, 32767).astype("<i2").tobytes()


class NumpyLinear:
    """Linear interpolation with numpy (what ratecv computes), the position carried across calls."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.step = in_rate / out_rate
        self.pos = 0.0
        self.last = 0.0

    def convert(self, pcm: bytes) -> bytes:
        x = np.concatenate(([self.last], np.frombuffer(pcm, "<i2").astype(np.float32)))
        n = int((len(x) - 1 - self.pos) / self.step)
        t = self.pos + np.arange(n) * self.step
        y = np.interp(t, np.arange(len(x)), x)
        self.pos = t[-1] + self.step - (len(x) - 1) if n else self.pos - (len(x) - 1)
        self.last = x[-1]
        return y.astype("<i2").tobytes()


def resamplers(number: int, repeat: int) -> dict[str, dict[str, float]]:
    """µs per 20 ms frame of the resampler alone, per implementation and direction."""
    out: dict[str, dict[str, float]] = {}
    for impl, make in (("audioop.ratecv (chosen)", Resampler), ("numpy FIR 48 taps", NumpyFir),
                       ("numpy linear interp", NumpyLinear)):
        row = {}
        for a, b in ((16000, 24000), (8000, 24000), (24000, 16000), (24000, 8000)):
            conv, frame = make(a, b), tone(a, 20)
            row[f"{a // 1000}→{b // 1000}k"] = cpu_us(lambda conv=conv, frame=frame: conv.convert(frame),
                                                      number, repeat)
        out[impl] = row
    return out


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo").read().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.bench.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--number", type=int, default=5000, help="frames per round (default 5000)")
    parser.add_argument("--repeat", type=int, default=7, help="rounds; the best is reported (default 7)")
    args = parser.parse_args()
    n, r = args.number, args.repeat
    assert audioop is not None
    print(f"machine: {machine()}")
    print("\nstream face alone, CPU µs per 20 ms frame (and CPU-s per call-second, both ways, 20 ms chunks):")
    for name, (inb, out20, out100) in faces(n, r).items():
        per_call = (inb + out20) * FRAMES_PER_SECOND / 1e6
        print(f"  {name:28s} in {inb:6.2f}   out {out20:6.2f} (100 ms chunks: {out100:6.2f})   "
              f"{per_call * 1e3:6.3f} ms CPU per call-second")
    print("\nwhole per-frame path (stream face + Call + Realtime face), CPU µs per 20 ms frame:")
    for name, (inb, out) in whole_path(n, r).items():
        per_call = (inb + out) * FRAMES_PER_SECOND / 1e6
        print(f"  {name:28s} in {inb:6.2f}   out {out:6.2f}   {per_call * 1e3:6.3f} ms CPU per call-second")
    print("\nresampler alone, CPU µs per 20 ms frame:")
    for impl, row in resamplers(n, r).items():
        print(f"  {impl:26s} " + "   ".join(f"{k} {v:6.2f}" for k, v in row.items()))


if __name__ == "__main__":
    main()
