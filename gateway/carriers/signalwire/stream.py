"""SignalWire media streams: Twilio Media Streams' messages, decoded and encoded by the Twilio face.

SignalWire's `<Stream>` reference documents Twilio's messages (connected, start, media, dtmf, mark,
stop; and to SignalWire media, mark, clear, dtmf), with UUIDs for every id and mark echoes for audio
played or cleared. One difference on paper: its `media` and `stop` examples carry no `streamSid` (its
`mark` and `dtmf` carry one on bidirectional streams). The Twilio face refuses a media or mark frame
whose `streamSid` is not the stream's, so this face lets a frame *without* one through as the
stream's own; a frame naming another stream is still refused. The hot path is the Twilio face's: only
a frame it refuses as `unknown_stream` is looked at again.
"""

from __future__ import annotations

import orjson

from gateway.carriers.twilio.stream import TwilioStream
from gateway.core.events import CarrierEvent, ProtocolViolation


class SignalWireStream(TwilioStream):
    """The Twilio stream face, tolerant of frames that leave their `streamSid` out."""

    __slots__ = ()

    def decode(self, data: bytes | str) -> CarrierEvent:
        event = super().decode(data)
        if type(event) is ProtocolViolation and event.kind == "unknown_stream" and self.stream_sid is not None:
            frame = orjson.loads(data)  # it parsed the first time
            if "streamSid" not in frame:
                frame["streamSid"] = self.stream_sid
                return super().decode(orjson.dumps(frame))
        return event
