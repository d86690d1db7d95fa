"""Plivo Audio Streams: frames in, typed carrier events out; carrier actions in, frames out.

Wire format (Plivo's "Audio Streaming Protocol Reference" and its stream-event pages):

- from Plivo: `start` {sequenceNumber, start: {callId, streamId, accountId, tracks, mediaFormat:
  {encoding, sampleRate}}, extra_headers}; `media` {sequenceNumber, streamId, media: {track,
  timestamp, chunk, payload}}; `dtmf`; `playedStream` {streamId, name} once the audio queued before a
  checkpoint has played; `clearedAudio` {streamId} after a clear. There is no `stop`: the socket
  closes when the call or the stream ends (a `stop`, should one come, is taken as the end).
- to Plivo: `playAudio` {media: {contentType, sampleRate, payload}}; `checkpoint` {streamId, name};
  `clearAudio` {streamId}; `sendDTMF` {dtmf: the keys} plays keys into the call (the send_dtmf tool). The
  event is in Plivo's list of stream events (PL-P, and Plivo's AsyncAPI as transcribed at
  events.apis.io/channels/plivo/audiostream); its `dtmf` field is what the clients built on it send
  (pipecat-style transports, a LiveKit transport): the page read does not spell the payload out.

The media payload is never decoded: the base64 string Plivo sends is the string the upstream gets, and
back. This is the hot path (about 50 frames a second each way per call): one event or one frame per
call of `decode` or `encode`, no logging, and the JSON prefixes built once (the stream's at `start`).
Checkpoints pending at a `clearAudio` may never be answered: the core starts a new mark generation at
every clear and never waits for them.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.carriers.base import json_object
from gateway.carriers.plivo.webhook import UUID, decode_extra_headers
from gateway.core.codec import PCMU
from gateway.core.events import (
    CallerAudio,
    CarrierEvent,
    ClearPlayback,
    Dtmf,
    MarkPlayed,
    PlayAudio,
    ProtocolViolation,
    SendDigits,
    SendMark,
    StreamNoise,
    StreamStart,
    StreamStop,
)

ULAW = "audio/x-mulaw"
STREAM_ID_MAX_CHARS = 64
# playAudio carries no stream id (Plivo's playAudio page): the same prefix for every stream.
PLAY_PREFIX = b'{"event":"playAudio","media":{"contentType":"audio/x-mulaw","sampleRate":8000,"payload":'


class PlivoStream:
    """Decodes and encodes the frames of one Plivo audio stream (a `carriers.base.StreamFace`)."""

    __slots__ = ("_checkpoint_prefix", "_clear", "stream_id")

    def __init__(self) -> None:
        self.stream_id: str | None = None
        self._checkpoint_prefix = b'{"event":"checkpoint","streamId":null,"name":'
        self._clear = b'{"event":"clearAudio","streamId":null}'

    # --- frames from Plivo ---------------------------------------------------------------------

    def decode(self, data: bytes | str) -> CarrierEvent:
        """A text frame."""
        frame = json_object(data)
        if type(frame) is ProtocolViolation:
            return frame
        event = frame.get("event")
        if event == "media":
            if self.stream_id is None:
                return ProtocolViolation("media_before_start", "media frame before start")
            stream_id = frame.get("streamId")
            if stream_id is not None and stream_id != self.stream_id:
                return ProtocolViolation("unknown_stream", "media frame for another stream")
            media = frame.get("media")
            payload = media.get("payload") if type(media) is dict else None
            if type(payload) is not str or not payload:
                return ProtocolViolation("invalid_media", "media frame without a payload string")
            if media.get("track", "inbound") != "inbound":
                return ProtocolViolation("unexpected_track", "media frame for a track other than inbound")
            return CallerAudio(payload)
        if event == "playedStream":
            name = frame.get("name")
            if type(name) is not str:
                return ProtocolViolation("invalid_mark", "playedStream without a name")
            if self.stream_id is None or frame.get("streamId", self.stream_id) != self.stream_id:
                return ProtocolViolation("unknown_stream", "playedStream for another stream")
            return MarkPlayed(name)
        if event == "start":
            return self._start(frame)
        if event == "clearedAudio":
            if self.stream_id is None or frame.get("streamId", self.stream_id) != self.stream_id:
                return ProtocolViolation("unknown_stream", "clearedAudio for another stream")
            return StreamNoise("clearedAudio")
        if event == "dtmf":
            dtmf = frame.get("dtmf")
            digit = dtmf.get("digit") if type(dtmf) is dict else frame.get("digit")
            if type(digit) is not str or not digit:
                return ProtocolViolation("invalid_dtmf", "dtmf frame without a digit")
            return Dtmf(digit[:8])
        if event == "stop":
            return StreamStop()
        if type(event) is not str:
            return ProtocolViolation("missing_event", "frame has no event name")
        return ProtocolViolation("unknown_event", f"unknown event {event[:40]!r}")

    def decode_binary(self, data: bytes) -> CarrierEvent:
        """A binary frame: Plivo sends JSON text frames only, so this is never a valid one."""
        return ProtocolViolation("binary_frame", f"{len(data)} bytes")

    def _start(self, frame: dict[str, Any]) -> CarrierEvent:
        if self.stream_id is not None:
            return ProtocolViolation("duplicate_start", "a second start frame on one stream")
        start = frame.get("start")
        if type(start) is not dict:
            return ProtocolViolation("invalid_start", "start frame without a start object")
        stream_id = start.get("streamId")
        call_id = start.get("callId")
        if (type(stream_id) is not str or not stream_id or len(stream_id) > STREAM_ID_MAX_CHARS
                or type(call_id) is not str or UUID.match(call_id) is None):
            return ProtocolViolation("invalid_start", "start frame without a streamId or a callId UUID")
        fmt = start.get("mediaFormat") if type(start.get("mediaFormat")) is dict else {}
        encoding = fmt.get("encoding", ULAW)
        rate = fmt.get("sampleRate", 8000)
        if type(encoding) is not str or encoding.split(";")[0].strip() != ULAW or rate not in (8000, "8000"):
            return ProtocolViolation("unsupported_codec",
                                     f"media format {str(encoding)[:40]}/{str(rate)[:10]}; audio/x-mulaw/8000 expected")
        extra = frame.get("extra_headers")
        if type(extra) is not str:
            extra = start.get("extra_headers")
        parameters = decode_extra_headers(extra) if type(extra) is str else {}
        account_id = start.get("accountId")
        self.stream_id = stream_id
        sid = orjson.dumps(stream_id)
        self._checkpoint_prefix = b'{"event":"checkpoint","streamId":' + sid + b',"name":'
        self._clear = b'{"event":"clearAudio","streamId":' + sid + b"}"
        return StreamStart(
            stream_id=stream_id,
            call_id=call_id,
            account_id=account_id if type(account_id) is str else None,
            parameters=parameters,
            codec=PCMU,
        )

    # --- frames to Plivo -----------------------------------------------------------------------

    def encode(self, action: PlayAudio | SendMark | ClearPlayback | SendDigits) -> bytes:
        """The text frame for a carrier action (Plivo takes audio in JSON text frames only)."""
        if type(action) is PlayAudio:
            return PLAY_PREFIX + orjson.dumps(action.payload) + b"}}"
        if type(action) is SendMark:
            return self._checkpoint_prefix + orjson.dumps(action.name) + b"}"
        if type(action) is ClearPlayback:
            return self._clear
        if type(action) is SendDigits:
            return orjson.dumps({"event": "sendDTMF", "dtmf": action.digits})
        raise TypeError(f"not a carrier action: {type(action).__name__}")
