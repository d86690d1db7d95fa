"""Telnyx media streams: frames in, typed carrier events out; carrier actions in, frames out.

Wire format (TX-A, Telnyx's AsyncAPI of the media WebSocket; every frame is a JSON text frame):

- from Telnyx: `connected` {version}; `start` {sequence_number, stream_id, start: {user_id,
  call_control_id, call_session_id, from, to, custom_parameters, media_format: {encoding, sample_rate,
  channels}}}; `media` {sequence_number, stream_id, media: {track, chunk, timestamp, payload}} with the
  payload a base64 RTP payload (no RTP header); `mark` {stream_id, mark: {name}} once the media sent
  before that mark has played, at once when nothing is playing or queued, and for every queued mark at a
  `clear`; `dtmf` {dtmf: {digit}}; `error` {payload: {code, title, detail}}; `stop`.
- to Telnyx (bidirectionalMode rtp): `media` {media: {payload}} (RTP payloads of 20 ms to 30 s, in the
  stream's bidirectionalCodec), `mark` {mark: {name}}, `clear` (stops playback and drops queued media).

The codec is the one the answer asked for (TELNYX_CODEC); a `start` whose `media_format` names another
is refused, since the audio we send back must be in that same codec. The media payload is never decoded:
the base64 string Telnyx sends is the string the upstream gets, and back. This is the hot path (about 50
frames a second each way per call): one event or one frame per call of `decode` or `encode`, no logging,
and the outgoing frames built from constant prefixes (they carry no stream id: the socket is the stream).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.carriers.base import json_object
from gateway.carriers.telnyx.webhook import account_id_valid, call_control_id_valid, texml_codec
from gateway.core.codec import PCMU, Codec
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

STREAM_ID_MAX_CHARS = 128
PARAMETERS_MAX = 32  # custom parameters kept from a start (ours are 3)
MEDIA_PREFIX = b'{"event":"media","media":{"payload":'
MARK_PREFIX = b'{"event":"mark","mark":{"name":'
CLEAR = b'{"event":"clear"}'


class TelnyxStream:
    """Decodes and encodes the frames of one Telnyx media stream (a `carriers.base.StreamFace`)."""

    __slots__ = ("_codec", "_encoding", "stream_id")

    def __init__(self, codec: Codec = PCMU) -> None:
        self.stream_id: str | None = None
        self._codec = codec
        self._encoding = texml_codec(codec)  # as media_format names it: PCMU or PCMA

    # --- frames from Telnyx --------------------------------------------------------------------

    def decode(self, data: bytes | str) -> CarrierEvent:
        """A text frame."""
        frame = json_object(data)
        if type(frame) is ProtocolViolation:
            return frame
        event = frame.get("event")
        if event == "media":
            if self.stream_id is None:
                return ProtocolViolation("media_before_start", "media frame before start")
            stream_id = frame.get("stream_id")
            if stream_id is not None and stream_id != self.stream_id:
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
            if self.stream_id is None or frame.get("stream_id", self.stream_id) != self.stream_id:
                return ProtocolViolation("unknown_stream", "mark frame for another stream")
            return MarkPlayed(name)
        if event == "start":
            return self._start(frame)
        if event == "stop":
            if self.stream_id is not None and frame.get("stream_id", self.stream_id) != self.stream_id:
                return ProtocolViolation("unknown_stream", "stop frame for another stream")
            return StreamStop()
        if event == "dtmf":
            dtmf = frame.get("dtmf")
            digit = dtmf.get("digit") if type(dtmf) is dict else None
            if type(digit) is not str or not 0 < len(digit) <= 8:
                return ProtocolViolation("invalid_dtmf", "dtmf frame without a digit")
            return Dtmf(digit)
        if event == "connected":
            return StreamNoise("connected")
        if event == "error":
            return ProtocolViolation("stream_error", _error_detail(frame))
        if type(event) is not str:
            return ProtocolViolation("missing_event", "frame has no event name")
        return ProtocolViolation("unknown_event", f"unknown event {event[:40]!r}")

    def decode_binary(self, data: bytes) -> CarrierEvent:
        """A binary frame: Telnyx sends JSON text frames only (TX-A), so this is never a valid one."""
        return ProtocolViolation("binary_frame", f"{len(data)} bytes")

    def _start(self, frame: dict[str, Any]) -> CarrierEvent:
        if self.stream_id is not None:
            return ProtocolViolation("duplicate_start", "a second start frame on one stream")
        start = frame.get("start")
        if type(start) is not dict:
            return ProtocolViolation("invalid_start", "start frame without a start object")
        stream_id = frame.get("stream_id")
        call_id = start.get("call_control_id")
        if (type(stream_id) is not str or not stream_id or len(stream_id) > STREAM_ID_MAX_CHARS
                or type(call_id) is not str or not call_control_id_valid(call_id)):
            return ProtocolViolation("invalid_start", "start frame without a stream_id or a call_control_id (v3:...)")
        fmt = start.get("media_format")
        fmt = fmt if type(fmt) is dict else {}
        encoding, rate, channels = fmt.get("encoding"), fmt.get("sample_rate"), fmt.get("channels", 1)
        if encoding != self._encoding or rate not in (8000, "8000") or channels not in (1, "1"):
            return ProtocolViolation("unsupported_codec", f"media format {str(encoding)[:20]}/{str(rate)[:10]}; "
                                                          f"{self._encoding}/8000 mono expected")
        params = start.get("custom_parameters")
        parameters = ({str(k)[:64]: str(v) for k, v in list(params.items())[:PARAMETERS_MAX]}
                      if type(params) is dict else {})
        account_id = start.get("user_id")
        self.stream_id = stream_id
        return StreamStart(
            stream_id=stream_id,
            call_id=call_id,
            account_id=account_id if type(account_id) is str and account_id_valid(account_id) else None,
            parameters=parameters,
            codec=self._codec,
        )

    # --- frames to Telnyx ----------------------------------------------------------------------

    def encode(self, action: PlayAudio | SendMark | ClearPlayback) -> bytes:
        """The text frame for a carrier action (Telnyx takes audio in JSON text frames only)."""
        if type(action) is PlayAudio:
            return MEDIA_PREFIX + orjson.dumps(action.payload) + b"}}"
        if type(action) is SendMark:
            return MARK_PREFIX + orjson.dumps(action.name) + b"}}"
        if type(action) is ClearPlayback:
            return CLEAR
        raise TypeError(f"not a carrier action: {type(action).__name__}")


def _error_detail(frame: dict[str, Any]) -> str:
    """What an `error` frame says, bounded: its code and title (TX-A: payload {code, title, detail})."""
    payload = frame.get("payload")
    if type(payload) is not dict:
        return "error frame without a payload"
    code, title = payload.get("code"), payload.get("title") or payload.get("detail")
    return f"Telnyx stream error {str(code)[:16]}: {str(title)[:120]}"
