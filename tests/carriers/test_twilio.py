"""Twilio face: frames to neutral events and back, bad frames as bounded violations."""

import orjson
import pytest

from gateway.carriers.twilio import TwilioFace
from gateway.core.events import (
    CARRIER_AUDIO,
    CARRIER_CONNECTED,
    CARRIER_DTMF,
    CARRIER_INVALID,
    CARRIER_MARK,
    CARRIER_START,
    CARRIER_STOP,
)

START = {"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
         "start": {"accountSid": "AC1", "streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"],
                   "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                   "customParameters": {"token": "tok", "from": "+1555"}}}


def started() -> TwilioFace:
    face = TwilioFace()
    kind, _ = face.decode(orjson.dumps(START).decode())
    assert kind == CARRIER_START
    return face


def test_start_media_mark_dtmf_stop():
    face = TwilioFace()
    assert face.decode('{"event":"connected","protocol":"Call","version":"1.0.0"}')[0] == CARRIER_CONNECTED
    kind, start = face.decode(orjson.dumps(START).decode())
    assert kind == CARRIER_START
    assert (start.stream_id, start.call_id, start.parameters) == ("MZ1", "CA1", {"token": "tok", "from": "+1555"})
    media = {"event": "media", "streamSid": "MZ1", "sequenceNumber": "2",
             "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": "//8="}}
    assert face.decode(orjson.dumps(media).decode()) == (CARRIER_AUDIO, "//8=")
    assert face.decode('{"event":"mark","streamSid":"MZ1","mark":{"name":"0.1"}}') == (CARRIER_MARK, "0.1")
    assert face.decode('{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"5"}}') == (
        CARRIER_DTMF, "5")
    assert face.decode('{"event":"stop","streamSid":"MZ1","stop":{}}')[0] == CARRIER_STOP


@pytest.mark.parametrize(("frame", "kind"), [
    ("not json", "invalid_json"),
    ("[1,2]", "invalid_frame"),
    ('{"foo":1}', "missing_event"),
    ('{"event":"dance"}', "unknown_event"),
    ('{"event":"media","streamSid":"MZ2","media":{"payload":"//8="}}', "unknown_stream"),
    ('{"event":"media","streamSid":"MZ1","media":{}}', "invalid_media"),
    ('{"event":"media","streamSid":"MZ1","media":{"payload":7}}', "invalid_media"),
    ('{"event":"media","streamSid":"MZ1","media":{"track":"outbound","payload":"//8="}}', "unexpected_track"),
    ('{"event":"mark","streamSid":"MZ1","mark":{}}', "invalid_mark"),
    (orjson.dumps(START).decode(), "duplicate_start"),
])
def test_violations_after_start(frame, kind):
    face = started()
    got_kind, violation = face.decode(frame)
    assert got_kind == CARRIER_INVALID and violation.kind == kind


def test_media_before_start_and_wrong_codec():
    face = TwilioFace()
    kind, v = face.decode('{"event":"media","streamSid":"MZ1","media":{"payload":"//8="}}')
    assert (kind, v.kind) == (CARRIER_INVALID, "media_before_start")
    bad = orjson.loads(orjson.dumps(START))
    bad["start"]["mediaFormat"] = {"encoding": "audio/l16", "sampleRate": 16000}
    kind, v = face.decode(orjson.dumps(bad).decode())
    assert (kind, v.kind) == (CARRIER_INVALID, "unsupported_codec")


def test_frames_to_twilio_are_exact():
    face = started()
    payload = "AAEC/w=="
    assert orjson.loads(face.play(payload)) == {"event": "media", "streamSid": "MZ1", "media": {"payload": payload}}
    assert orjson.loads(face.mark("3.7")) == {"event": "mark", "streamSid": "MZ1", "mark": {"name": "3.7"}}
    assert orjson.loads(face.clear()) == {"event": "clear", "streamSid": "MZ1"}
    # A hostile payload cannot break out of its JSON string.
    assert orjson.loads(face.play('x","event":"clear'))["media"]["payload"] == 'x","event":"clear'
