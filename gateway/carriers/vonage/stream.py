"""Vonage's call WebSocket: frames in, typed carrier events out; carrier actions in, frames out, with the
audio converted between the stream's L16 (8 or 16 kHz) and the Realtime session's 24 kHz PCM.

Wire format, from Vonage's WebSockets guide (https://developer.vonage.com/en/voice/voice-api/concepts/websockets)
unless said otherwise:

- from Vonage: first a text frame `{"event": "websocket:connected", "content-type": "audio/l16;rate=16000",
  ...}` with the NCCO endpoint's `headers` flattened at its top level (ours: `call_uuid`, `region_url`,
  `token`, `from`, `to`); then binary frames of exactly 20 ms of 16-bit little-endian PCM (320 bytes at
  8 kHz, 640 at 16 kHz); text `{"event": "websocket:dtmf", "digit": "5", "duration": 260}`. There is no stop
  message: the socket closes when the call ends.
- to Vonage: binary frames of exactly 20 ms ("It is important that each message is 320 or 640 bytes ...
  and contains 20ms of audio"), which Vonage buffers and plays in order.
- playback control: `{"action": "clear"}` (drop the queued audio; answered `{"event": "websocket:cleared"}`)
  and `{"action": "notify", "payload": {...}}` (answered `{"event": "websocket:notify", "payload": {...}}`
  once the audio queued before it has played). These two come from the current page's later sections as
  transcribed in the AsyncAPI description at asyncapi.apis.io/asyncapis/vonage/vonage-asyncapi and used by
  pipecat and other clients; the part of the page read for this module stops before them. The notify is the
  mark (`payload.name`); what Vonage does with notifies pending at a clear is not documented: the core
  never waits for them (a clear starts a new mark generation).

Frames to Vonage are whole 20 ms frames, so the converted answer audio is cut, and the partial frame at the
end of each chunk is held back until more audio comes (`convert.Outbound`). The core ends every answer with
a `SendMark(last=True)`: the held frame goes out padded with silence, then the notify. A mark that is not
last, arriving while a partial frame is held, is deferred: its notify is written right after the next
frame, the one that completes the held audio. So a notify never claims audio that has not been sent (the
name's promise, "the audio sent before it has played", holds), at the cost of arriving up to one frame
(20 ms) late: the playback position the core anchors on it lags by up to 20 ms, and a truncate on
barge-in then says the caller heard up to 20 ms less than they did, never more. Emitting the notify at once
would bias the other way: echoed before the held audio played, the caller credited with up to 20 ms they
never heard. Measured end to end (tests/e2e/test_vonage.py's scenario, both dialects and rates): answers in
50 ms or 30 ms deltas (a partial frame held after each) truncate 11.6-13.5 ms short of what the caller heard,
100 ms deltas (whole frames) 1.1-8.1 ms short; notifying at once instead measured 7.0-9.1 ms over.

This is the hot path: one small event per frame in, one list of frames per action out, no logging.
"""

from __future__ import annotations

import binascii
from typing import Any

import orjson

from gateway.carriers.base import Frames, json_object
from gateway.carriers.vonage.convert import REALTIME_RATE, Outbound, Resampler, frame_bytes
from gateway.carriers.vonage.webhook import CALL_HEADER, UUID
from gateway.core.codec import l16
from gateway.core.events import (
    CallerAudio,
    CarrierEvent,
    ClearPlayback,
    Dtmf,
    MarkPlayed,
    PlayAudio,
    ProtocolViolation,
    SendMark,
    StreamNoise,
    StreamStart,
)

REALTIME_CODEC = l16(REALTIME_RATE)
STREAM_RATES = (8000, 16000)
CLEAR = b'{"action":"clear"}'
NOTIFY_PREFIX = b'{"action":"notify","payload":{"name":'
MAX_PARAMETERS = 16
PARAMETER_NAME_MAX_CHARS = 64
PARAMETER_VALUE_MAX_CHARS = 512


def stream_rate(content_type: Any) -> int | None:
    """The sample rate of `audio/l16;rate=8000|16000` (case and spaces aside), None for anything else."""
    if type(content_type) is not str:
        return None
    kind, *params = (part.strip().lower() for part in content_type.split(";"))
    if kind != "audio/l16":
        return None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "rate" and value.strip().isdigit() and int(value) in STREAM_RATES:
            return int(value)
    return None


def notify(name: str) -> bytes:
    """The notify frame that marks `name` (Vonage echoes its payload once the audio before it has played)."""
    return NOTIFY_PREFIX + orjson.dumps(name) + b"}}"


class VonageStream:
    """Decodes and encodes the frames of one Vonage call WebSocket (a `carriers.base.StreamFace`)."""

    __slots__ = ("_deferred", "_frame_in", "_inbound", "_outbound", "bad_payloads", "call_id", "rate")

    def __init__(self, rate: int = 16000) -> None:
        self.call_id: str | None = None  # set by websocket:connected
        self.rate = rate  # what the NCCO asked for; websocket:connected says what came
        self._frame_in = frame_bytes(rate)
        self._inbound = Resampler(rate, REALTIME_RATE)
        self._outbound = Outbound(rate)
        self._deferred: list[bytes] = []  # notifies waiting for the frame that completes the held audio
        self.bad_payloads = 0  # answer chunks that were not base64 (dropped)

    # --- frames from Vonage --------------------------------------------------------------------

    def decode(self, data: bytes | str) -> CarrierEvent:
        """A text frame."""
        frame = json_object(data)
        if type(frame) is ProtocolViolation:
            return frame
        event = frame.get("event")
        if event == "websocket:notify":
            payload = frame.get("payload")
            name = payload.get("name") if type(payload) is dict else None
            if type(name) is not str:
                return ProtocolViolation("invalid_mark", "websocket:notify without a payload name")
            return MarkPlayed(name)
        if event == "websocket:connected":
            return self._start(frame)
        if event == "websocket:dtmf":
            digit = frame.get("digit")
            if type(digit) is int and 0 <= digit <= 9:
                digit = str(digit)
            if type(digit) is not str or not digit:
                return ProtocolViolation("invalid_dtmf", "websocket:dtmf without a digit")
            return Dtmf(digit[:8])
        if event == "websocket:cleared":
            return StreamNoise("cleared")
        if type(event) is not str:
            return ProtocolViolation("missing_event", "frame has no event name")
        return ProtocolViolation("unknown_event", f"unknown event {event[:40]!r}")

    def decode_binary(self, data: bytes) -> CarrierEvent:
        """A binary frame: 20 ms of the caller's L16, converted to 24 kHz and base64-encoded."""
        if self.call_id is None:
            return ProtocolViolation("media_before_start", "audio frame before websocket:connected")
        if len(data) != self._frame_in:
            return ProtocolViolation("frame_size", f"{len(data)} bytes; {self._frame_in} expected "
                                                   f"(20 ms of L16 at {self.rate} Hz)")
        return CallerAudio(binascii.b2a_base64(self._inbound.convert(data), newline=False).decode("ascii"))

    def _start(self, frame: dict[str, Any]) -> CarrierEvent:
        if self.call_id is not None:
            return ProtocolViolation("duplicate_start", "a second websocket:connected on one stream")
        rate = stream_rate(frame.get("content-type"))
        if rate is None:
            return ProtocolViolation("unsupported_codec", f"content-type {str(frame.get('content-type'))[:40]!r}; "
                                                          "audio/l16;rate=8000 or 16000 expected")
        call_uuid = frame.get(CALL_HEADER)
        if type(call_uuid) is not str or UUID.match(call_uuid) is None:
            return ProtocolViolation("invalid_start", f"websocket:connected without a {CALL_HEADER} header (a UUID)")
        parameters = {}
        for name, value in frame.items():
            if name in ("event", "content-type", CALL_HEADER) or type(value) is not str:
                continue
            if len(parameters) == MAX_PARAMETERS:
                break
            parameters[name[:PARAMETER_NAME_MAX_CHARS]] = value[:PARAMETER_VALUE_MAX_CHARS]
        if rate != self.rate:
            self.rate, self._frame_in = rate, frame_bytes(rate)
            self._inbound, self._outbound = Resampler(rate, REALTIME_RATE), Outbound(rate)
        self.call_id = call_uuid
        # Vonage names no stream: the call's uuid stands for it in the logs.
        return StreamStart(stream_id=call_uuid, call_id=call_uuid, account_id=None, parameters=parameters,
                           codec=REALTIME_CODEC)

    # --- frames to Vonage ----------------------------------------------------------------------

    def encode(self, action: PlayAudio | SendMark | ClearPlayback) -> Frames:
        """The frames for a carrier action, in order: whole 20 ms binary audio frames and text commands."""
        kind = type(action)
        if kind is PlayAudio:
            try:
                pcm = binascii.a2b_base64(action.payload, strict_mode=True)
            except (binascii.Error, ValueError):
                self.bad_payloads += 1
                return []
            out: Frames = [(frame, True) for frame in self._outbound.push(pcm)]
            if out and self._deferred:  # the first frame completes the audio held when they were asked for
                out[1:1] = [(mark, False) for mark in self._deferred]
                self._deferred.clear()
            return out
        if kind is SendMark:
            if action.last:  # the answer ends: its held audio goes now, padded, then every notify
                out = []
                tail = self._outbound.flush()
                if tail is not None:
                    out.append((tail, True))
                out += [(mark, False) for mark in self._deferred]
                self._deferred.clear()
                out.append((notify(action.name), False))
                return out
            if self._outbound.held:
                self._deferred.append(notify(action.name))
                return []
            return [(notify(action.name), False)]
        if kind is ClearPlayback:
            self._outbound.reset()
            self._deferred.clear()
            return [(CLEAR, False)]
        raise TypeError(f"not a carrier action: {type(action).__name__}")
