"""Twilio Media Streams: frames in, typed carrier events out; carrier actions in, frames out.

Wire format: protocol-reference.md §4.3 (from Twilio) and §4.4 (to Twilio). The media payload is
never decoded: the base64 string Twilio sends is the string the upstream gets, and back. This is the
hot path (about 50 frames a second each way per call): one event or one frame per call of `decode`
or `encode`, no logging, and the stream's JSON prefixes built once at `start`.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.carriers.base import json_object
from gateway.core.codec import PCMU
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
    StreamStop,
)

ULAW = "audio/x-mulaw"


class TwilioStream:
    """Decodes and encodes the frames of one Twilio media stream (a `carriers.base.StreamFace`)."""

    __slots__ = ("_clear", "_mark_prefix", "_media_prefix", "_sid_json", "stream_sid")

    def __init__(self) -> None:
        self.stream_sid: str | None = None
        self._sid_json = b""
        self._media_prefix = b'{"event":"media","streamSid":,"media":{"payload":'
        self._mark_prefix = b'{"event":"mark","streamSid":,"mark":{"name":'
        self._clear = b'{"event":"clear","streamSid":}'

    # --- frames from Twilio --------------------------------------------------------------------

    def decode(self, data: bytes | str) -> CarrierEvent:
        """A text frame."""
        frame = json_object(data)
        if type(frame) is ProtocolViolation:
            return frame
        event = frame.get("event")
        if event == "media":
            if self.stream_sid is None:
                return ProtocolViolation("media_before_start", "media frame before start")
            if frame.get("streamSid") != self.stream_sid:
                return ProtocolViolation("unknown_stream", "media frame for another stream")
            media = frame.get("media")
            payload = media.get("payload") if type(media) is dict else None
            if type(payload) is not str or not payload:
                return ProtocolViolation("invalid_media", "media frame without a payload string")
            if media.get("track", "inbound") != "inbound":
                return ProtocolViolation("unexpected_track", "media frame for a track other than inbound")
            return CallerAudio(payload)
        if event == "mark":
            mark = frame.get("mark")
            name = mark.get("name") if type(mark) is dict else None
            if type(name) is not str:
                return ProtocolViolation("invalid_mark", "mark frame without a name")
            if self.stream_sid is None or frame.get("streamSid") != self.stream_sid:
                return ProtocolViolation("unknown_stream", "mark frame for another stream")
            return MarkPlayed(name)
        if event == "start":
            return self._start(frame)
        if event == "stop":
            if self.stream_sid is not None and frame.get("streamSid") not in (None, self.stream_sid):
                return ProtocolViolation("unknown_stream", "stop frame for another stream")
            return StreamStop()
        if event == "dtmf":
            dtmf = frame.get("dtmf")
            digit = dtmf.get("digit") if type(dtmf) is dict else None
            if type(digit) is not str:
                return ProtocolViolation("invalid_dtmf", "dtmf frame without a digit")
            return Dtmf(digit)
        if event == "connected":
            return StreamNoise("connected")
        if type(event) is not str:
            return ProtocolViolation("missing_event", "frame has no event name")
        return ProtocolViolation("unknown_event", f"unknown event {event[:40]!r}")

    def decode_binary(self, data: bytes) -> CarrierEvent:
        """A binary frame: Twilio sends only text frames (§4.2), so this is never a valid one."""
        return ProtocolViolation("binary_frame", f"{len(data)} bytes")

    def _start(self, frame: dict[str, Any]) -> CarrierEvent:
        if self.stream_sid is not None:
            return ProtocolViolation("duplicate_start", "a second start frame on one stream")
        start = frame.get("start")
        if type(start) is not dict:
            return ProtocolViolation("invalid_start", "start frame without a start object")
        stream_sid = start.get("streamSid") or frame.get("streamSid")
        call_sid = start.get("callSid")
        if type(stream_sid) is not str or type(call_sid) is not str or not stream_sid or not call_sid:
            return ProtocolViolation("invalid_start", "start frame without streamSid or callSid")
        fmt = start.get("mediaFormat") if type(start.get("mediaFormat")) is dict else {}
        encoding = fmt.get("encoding", ULAW)
        rate = fmt.get("sampleRate", 8000)
        if encoding != ULAW or rate != 8000:
            return ProtocolViolation("unsupported_codec",
                                     f"media format {encoding}/{rate}; audio/x-mulaw/8000 expected")
        params = start.get("customParameters")
        if type(params) is not dict:
            params = {}
        account_sid = start.get("accountSid")
        self.stream_sid = stream_sid
        self._sid_json = sid = orjson.dumps(stream_sid)
        self._media_prefix = b'{"event":"media","streamSid":' + sid + b',"media":{"payload":'
        self._mark_prefix = b'{"event":"mark","streamSid":' + sid + b',"mark":{"name":'
        self._clear = b'{"event":"clear","streamSid":' + sid + b"}"
        return StreamStart(
            stream_id=stream_sid,
            call_id=call_sid,
            account_id=account_sid if type(account_sid) is str else None,
            parameters={str(k): str(v) for k, v in params.items()},
            codec=PCMU,
        )

    # --- frames to Twilio ----------------------------------------------------------------------

    def encode(self, action: PlayAudio | SendMark | ClearPlayback) -> bytes:
        """The text frame for a carrier action (Twilio takes audio in JSON text frames only)."""
        if type(action) is PlayAudio:
            return self._media_prefix + orjson.dumps(action.payload) + b"}}"
        if type(action) is SendMark:
            return self._mark_prefix + orjson.dumps(action.name) + b"}}"
        if type(action) is ClearPlayback:
            return self._clear
        raise TypeError(f"not a carrier action: {type(action).__name__}")

    def play(self, payload: str) -> bytes:
        """A media frame: play this base64 μ-law audio after what is queued."""
        return self._media_prefix + orjson.dumps(payload) + b"}}"

    def mark(self, name: str) -> bytes:
        """A mark frame: Twilio echoes `name` once the audio queued before it has played (or is cleared)."""
        return self._mark_prefix + orjson.dumps(name) + b"}}"

    def clear(self) -> bytes:
        """A clear frame: drop the queued audio now; Twilio then echoes every pending mark."""
        return self._clear
