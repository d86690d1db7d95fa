"""What a load call says on the wire, per carrier: the webhook, the stream's opening, media, marks, clear.

The load caller (`gateway.bench.load_caller`) keeps the script, the pacing and the playback model; a
`Wire` only knows one carrier's protocol, the way its simulated caller in `gateway.sim` speaks it but
built for load: frames are assembled from byte strings, and each received frame is parsed once into
(kind, value). Only the G.711 passthrough carriers are here: the bench's stamps ride in the audio
bytes, and a converting carrier (Vonage) resamples them away, so its cost is measured per frame
instead (`python -m gateway.bench.convert`).
"""

from __future__ import annotations

import secrets
import time
import uuid
import xml.etree.ElementTree as ET
from typing import Any, ClassVar

import orjson

from gateway.carriers.plivo.webhook import decode_extra_headers

MEDIA, MARK, CLEAR, OTHER = 0, 1, 2, 3


class Wire:
    """Twilio's Media Streams (the default, and what the relay floor speaks)."""

    name: ClassVar[str] = "twilio"
    echoes_flushed_marks: ClassVar[bool] = True  # a clear sends back the marks it dropped

    def __init__(self, call_id: int) -> None:
        suffix = f"{call_id:06d}{time.monotonic_ns() % 10**12:012d}"
        self.stream_sid, self.call_sid = f"MZbench{suffix}", f"CAbench{suffix}"
        self.account_sid = "ACbench"

    @property
    def webhook_path(self) -> str:
        """Twilio's is the bare /voice, which the relay floor serves too."""
        return "/voice" if self.name == "twilio" else f"/voice/{self.name}"

    def webhook_form(self) -> dict[str, str]:
        return {"CallSid": self.call_sid, "AccountSid": self.account_sid, "From": "+15005550006",
                "To": "+15005550001", "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}

    def stream_of(self, answer: str) -> tuple[str, dict[str, str]]:
        """The stream URL and the parameters to hand back, from the webhook's answer."""
        stream = ET.fromstring(answer).find("./Connect/Stream")
        if stream is None or not stream.get("url"):
            raise ValueError("TwiML without <Connect><Stream url>")
        return stream.get("url", ""), {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}

    def opening(self, parameters: dict[str, str], seq: int) -> list[bytes]:
        start = {"accountSid": self.account_sid, "streamSid": self.stream_sid, "callSid": self.call_sid,
                 "tracks": ["inbound"], "customParameters": parameters,
                 "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}
        return [orjson.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
                orjson.dumps({"event": "start", "sequenceNumber": str(seq), "start": start,
                              "streamSid": self.stream_sid})]

    def media(self, seq: int, k: int, payload: str) -> bytes:
        return (f'{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{k}",'
                f'"timestamp":"{(k - 1) * 20}","payload":"{payload}"}},"streamSid":"{self.stream_sid}"}}').encode()

    def parse(self, data: bytes) -> tuple[int, Any]:
        msg = orjson.loads(data)
        event = msg.get("event")
        if event == "media":
            return MEDIA, msg["media"]["payload"]
        if event == "mark":
            return MARK, msg["mark"]["name"]
        if event == "clear":
            return CLEAR, None
        return OTHER, None

    def mark_played(self, seq: int, name: str) -> bytes:
        return (b'{"event":"mark","sequenceNumber":"' + str(seq).encode() + b'","streamSid":"'
                + self.stream_sid.encode() + b'","mark":{"name":' + orjson.dumps(name) + b"}}")

    def cleared(self, seq: int) -> bytes | None:
        """What the carrier answers a clear with, if anything."""
        return None

    def stop(self, seq: int) -> bytes | None:
        """The hang-up message, or None where hanging up is just closing the socket."""
        return orjson.dumps({"event": "stop", "sequenceNumber": str(seq), "streamSid": self.stream_sid,
                             "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})


class SignalWireWire(Wire):
    """SignalWire's copy of Twilio's protocol: UUID ids, no top-level streamSid on start/media/stop."""

    name = "signalwire"

    def __init__(self, call_id: int) -> None:
        self.stream_sid, self.call_sid, self.account_sid = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())

    def opening(self, parameters: dict[str, str], seq: int) -> list[bytes]:
        start = {"accountSid": self.account_sid, "streamSid": self.stream_sid, "callSid": self.call_sid,
                 "tracks": ["inbound"], "customParameters": parameters,
                 "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}
        return [orjson.dumps({"event": "connected", "protocol": "Call", "version": "0.2.0"}),
                orjson.dumps({"event": "start", "sequenceNumber": str(seq), "start": start})]

    def media(self, seq: int, k: int, payload: str) -> bytes:
        return (f'{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{k}",'
                f'"timestamp":"{(k - 1) * 20}","payload":"{payload}"}}}}').encode()

    def stop(self, seq: int) -> bytes | None:
        return orjson.dumps({"event": "stop", "sequenceNumber": str(seq),
                             "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})


class PlivoWire(Wire):
    """Plivo's Audio Streams: `<Stream>` XML with extraHeaders, playAudio/checkpoint/clearAudio, no stop."""

    name = "plivo"
    echoes_flushed_marks = False  # checkpoints pending at a clearAudio are never answered

    def __init__(self, call_id: int) -> None:
        self.stream_sid, self.call_sid = str(uuid.uuid4()), str(uuid.uuid4())
        self.account_sid = "MA" + secrets.token_hex(9).upper()
        self._extra = ""
        self._epoch_ms = int(time.time() * 1000)

    def webhook_form(self) -> dict[str, str]:
        return {"CallUUID": self.call_sid, "From": "15005550006", "To": "15005550001", "CallStatus": "ringing",
                "Direction": "inbound", "Event": "StartApp"}

    def stream_of(self, answer: str) -> tuple[str, dict[str, str]]:
        stream = ET.fromstring(answer).find("./Stream")
        if stream is None or not (stream.text or "").strip():
            raise ValueError("Plivo XML without <Stream>url</Stream>")
        self._extra = stream.get("extraHeaders", "")
        return (stream.text or "").strip(), decode_extra_headers(self._extra)

    def opening(self, parameters: dict[str, str], seq: int) -> list[bytes]:
        start = {"callId": self.call_sid, "streamId": self.stream_sid, "accountId": self.account_sid,
                 "tracks": ["inbound"], "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}}
        return [orjson.dumps({"event": "start", "sequenceNumber": seq, "start": start,
                              "extra_headers": self._extra})]

    def media(self, seq: int, k: int, payload: str) -> bytes:
        return (f'{{"event":"media","sequenceNumber":{seq},"streamId":"{self.stream_sid}","media":{{"track":'
                f'"inbound","timestamp":"{self._epoch_ms + (k - 1) * 20}","chunk":{k},"payload":"{payload}"}},'
                f'"extra_headers":""}}').encode()

    def parse(self, data: bytes) -> tuple[int, Any]:
        msg = orjson.loads(data)
        event = msg.get("event")
        if event == "playAudio":
            return MEDIA, msg["media"]["payload"]
        if event == "checkpoint":
            return MARK, msg["name"]
        if event == "clearAudio":
            return CLEAR, None
        return OTHER, None

    def mark_played(self, seq: int, name: str) -> bytes:
        return orjson.dumps({"event": "playedStream", "sequenceNumber": seq, "streamId": self.stream_sid,
                             "name": name})

    def cleared(self, seq: int) -> bytes | None:
        return orjson.dumps({"sequenceNumber": seq, "event": "clearedAudio", "streamId": self.stream_sid})

    def stop(self, seq: int) -> bytes | None:
        return None


class TelnyxWire(Wire):
    """Telnyx's media streams (TeXML, RTP mode, PCMU): snake_case ids, marks back at a clear, `stop`."""

    name = "telnyx"

    def __init__(self, call_id: int) -> None:
        self.stream_sid, self.account_sid = str(uuid.uuid4()).upper(), str(uuid.uuid4())
        self.call_sid = "v3:" + secrets.token_urlsafe(40)  # a Call Control id

    def webhook_form(self) -> dict[str, str]:
        return {"AccountSid": self.account_sid, "CallSid": self.call_sid, "From": "+15005550006",
                "To": "+15005550001", "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}

    def opening(self, parameters: dict[str, str], seq: int) -> list[bytes]:
        start = {"user_id": self.account_sid, "call_control_id": self.call_sid, "from": "+15005550006",
                 "to": "+15005550001", "custom_parameters": parameters,
                 "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}}
        return [orjson.dumps({"event": "connected", "version": "1.0.0"}),
                orjson.dumps({"event": "start", "sequence_number": str(seq), "start": start,
                              "stream_id": self.stream_sid})]

    def media(self, seq: int, k: int, payload: str) -> bytes:
        return (f'{{"event":"media","sequence_number":"{seq}","stream_id":"{self.stream_sid}","media":{{'
                f'"track":"inbound","chunk":"{k}","timestamp":"{(k - 1) * 20}","payload":"{payload}"}}}}').encode()

    def mark_played(self, seq: int, name: str) -> bytes:
        return (b'{"event":"mark","sequence_number":"' + str(seq).encode() + b'","stream_id":"'
                + self.stream_sid.encode() + b'","mark":{"name":' + orjson.dumps(name) + b"}}")

    def stop(self, seq: int) -> bytes | None:
        return orjson.dumps({"event": "stop", "sequence_number": str(seq), "stream_id": self.stream_sid,
                             "stop": {"user_id": self.account_sid, "call_control_id": self.call_sid}})


WIRES: dict[str, type[Wire]] = {"twilio": Wire, "signalwire": SignalWireWire, "plivo": PlivoWire,
                                "telnyx": TelnyxWire}
