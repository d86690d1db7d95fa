"""Twilio Media Streams: frames in, neutral carrier events out; neutral actions in, frames out.

Wire format: protocol-reference.md §4.3 (from Twilio) and §4.4 (to Twilio). The media payload is
never decoded: the base64 string Twilio sends is the string the upstream gets, and back.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.events import (
    CARRIER_AUDIO,
    CARRIER_CONNECTED,
    CARRIER_DTMF,
    CARRIER_INVALID,
    CARRIER_MARK,
    CARRIER_START,
    CARRIER_STOP,
    CarrierStart,
    ProtocolViolation,
)

NAME = "twilio"
ULAW = "audio/x-mulaw"


def _invalid(kind: str, detail: str) -> tuple[str, ProtocolViolation]:
    return CARRIER_INVALID, ProtocolViolation(kind, detail)


class TwilioFace:
    """Decodes and encodes the frames of one Twilio media stream."""

    carrier = NAME

    def __init__(self) -> None:
        self.stream_sid: str | None = None
        self._sid_json = b""

    # --- frames from Twilio --------------------------------------------------------------------

    def decode(self, text: bytes | str) -> tuple[str, Any]:
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            return _invalid("invalid_json", "frame is not JSON")
        if type(frame) is not dict:
            return _invalid("invalid_frame", "frame is not a JSON object")
        event = frame.get("event")
        if event == "media":
            if self.stream_sid is None:
                return _invalid("media_before_start", "media frame before start")
            if frame.get("streamSid") != self.stream_sid:
                return _invalid("unknown_stream", "media frame for another stream")
            media = frame.get("media")
            payload = media.get("payload") if type(media) is dict else None
            if type(payload) is not str or not payload:
                return _invalid("invalid_media", "media frame without a payload string")
            if media.get("track", "inbound") != "inbound":
                return _invalid("unexpected_track", "media frame for a track other than inbound")
            return CARRIER_AUDIO, payload
        if event == "mark":
            mark = frame.get("mark")
            name = mark.get("name") if type(mark) is dict else None
            if type(name) is not str:
                return _invalid("invalid_mark", "mark frame without a name")
            if self.stream_sid is None or frame.get("streamSid") != self.stream_sid:
                return _invalid("unknown_stream", "mark frame for another stream")
            return CARRIER_MARK, name
        if event == "start":
            return self._start(frame)
        if event == "stop":
            if self.stream_sid is not None and frame.get("streamSid") not in (None, self.stream_sid):
                return _invalid("unknown_stream", "stop frame for another stream")
            return CARRIER_STOP, None
        if event == "dtmf":
            dtmf = frame.get("dtmf")
            digit = dtmf.get("digit") if type(dtmf) is dict else None
            if type(digit) is not str:
                return _invalid("invalid_dtmf", "dtmf frame without a digit")
            return CARRIER_DTMF, digit
        if event == "connected":
            return CARRIER_CONNECTED, None
        if type(event) is not str:
            return _invalid("missing_event", "frame has no event name")
        return _invalid("unknown_event", f"unknown event {event[:40]!r}")

    def _start(self, frame: dict[str, Any]) -> tuple[str, Any]:
        if self.stream_sid is not None:
            return _invalid("duplicate_start", "a second start frame on one stream")
        start = frame.get("start")
        if type(start) is not dict:
            return _invalid("invalid_start", "start frame without a start object")
        stream_sid = start.get("streamSid") or frame.get("streamSid")
        call_sid = start.get("callSid")
        if type(stream_sid) is not str or type(call_sid) is not str or not stream_sid or not call_sid:
            return _invalid("invalid_start", "start frame without streamSid or callSid")
        fmt = start.get("mediaFormat") if type(start.get("mediaFormat")) is dict else {}
        encoding = fmt.get("encoding", ULAW)
        rate = fmt.get("sampleRate", 8000)
        if encoding != ULAW or rate != 8000:
            return _invalid("unsupported_codec", f"media format {encoding}/{rate}; audio/x-mulaw/8000 expected")
        params = start.get("customParameters")
        if type(params) is not dict:
            params = {}
        self.stream_sid = stream_sid
        self._sid_json = orjson.dumps(stream_sid)
        return CARRIER_START, CarrierStart(
            stream_id=stream_sid,
            call_id=call_sid,
            account_id=start.get("accountSid"),
            parameters={str(k): str(v) for k, v in params.items()},
            encoding=encoding,
            sample_rate=rate,
        )

    # --- frames to Twilio ----------------------------------------------------------------------

    def play(self, payload: str) -> bytes:
        return b'{"event":"media","streamSid":' + self._sid_json + b',"media":{"payload":' + orjson.dumps(
            payload) + b"}}"

    def mark(self, name: str) -> bytes:
        return b'{"event":"mark","streamSid":' + self._sid_json + b',"mark":{"name":' + orjson.dumps(name) + b"}}"

    def clear(self) -> bytes:
        return b'{"event":"clear","streamSid":' + self._sid_json + b"}"
