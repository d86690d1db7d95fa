"""Twilio stream face: frames to typed carrier events and back, bad frames as bounded violations."""

import orjson
import pytest

from gateway.carriers.twilio.stream import TwilioStream
from gateway.core.codec import PCMU
from gateway.core.events import (
    CallerAudio,
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

START = {"event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
         "start": {"accountSid": "AC1", "streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"],
                   "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                   "customParameters": {"token": "tok", "from": "+1555"}}}
START_TEXT = orjson.dumps(START).decode()


def started() -> TwilioStream:
    face = TwilioStream()
    assert type(face.decode(START_TEXT)) is StreamStart
    return face


def with_start(**changes: object) -> str:
    frame = orjson.loads(START_TEXT)
    frame["start"].update(changes)
    return orjson.dumps(frame).decode()


def test_start_media_mark_dtmf_stop():
    face = TwilioStream()
    assert face.decode('{"event":"connected","protocol":"Call","version":"1.0.0"}') == StreamNoise("connected")
    start = face.decode(START_TEXT)
    assert start == StreamStart(stream_id="MZ1", call_id="CA1", account_id="AC1",
                                parameters={"token": "tok", "from": "+1555"}, codec=PCMU)
    assert face.stream_sid == "MZ1"
    media = {"event": "media", "streamSid": "MZ1", "sequenceNumber": "2",
             "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": "//8="}}
    assert face.decode(orjson.dumps(media)) == CallerAudio("//8=")  # bytes as well as str
    assert face.decode('{"event":"mark","streamSid":"MZ1","mark":{"name":"0.1"}}') == MarkPlayed("0.1")
    assert face.decode('{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"5"}}') == Dtmf("5")
    assert face.decode('{"event":"stop","streamSid":"MZ1","stop":{}}') == StreamStop()


def test_start_defaults_and_coercions():
    """No mediaFormat means μ-law 8 kHz; parameters become strings; a non-string accountSid is dropped."""
    frame = {"event": "start", "streamSid": "MZ9",
             "start": {"callSid": "CA9", "accountSid": 7, "customParameters": {"n": 1}}}
    start = TwilioStream().decode(orjson.dumps(frame))
    assert start == StreamStart(stream_id="MZ9", call_id="CA9", account_id=None, parameters={"n": "1"}, codec=PCMU)
    assert TwilioStream().decode(with_start(customParameters=[1])).parameters == {}


def test_stop_without_stream_sid_and_before_start():
    assert started().decode('{"event":"stop"}') == StreamStop()
    assert TwilioStream().decode('{"event":"stop","streamSid":"MZ7"}') == StreamStop()


VIOLATIONS_AFTER_START = [
    ("not json", "invalid_json"),
    ("[1,2]", "invalid_frame"),
    ('{"foo":1}', "missing_event"),
    ('{"event":7}', "missing_event"),
    ('{"event":"dance"}', "unknown_event"),
    ('{"event":"media","streamSid":"MZ2","media":{"payload":"//8="}}', "unknown_stream"),
    ('{"event":"media","streamSid":"MZ1","media":{}}', "invalid_media"),
    ('{"event":"media","streamSid":"MZ1","media":"x"}', "invalid_media"),
    ('{"event":"media","streamSid":"MZ1","media":{"payload":""}}', "invalid_media"),
    ('{"event":"media","streamSid":"MZ1","media":{"payload":7}}', "invalid_media"),
    ('{"event":"media","streamSid":"MZ1","media":{"track":"outbound","payload":"//8="}}', "unexpected_track"),
    ('{"event":"mark","streamSid":"MZ1","mark":{}}', "invalid_mark"),
    ('{"event":"mark","streamSid":"MZ2","mark":{"name":"1"}}', "unknown_stream"),
    ('{"event":"stop","streamSid":"MZ2"}', "unknown_stream"),
    ('{"event":"dtmf","streamSid":"MZ1","dtmf":{}}', "invalid_dtmf"),
    (START_TEXT, "duplicate_start"),
]


@pytest.mark.parametrize(("frame", "kind"), VIOLATIONS_AFTER_START)
def test_violations_after_start(frame, kind):
    violation = started().decode(frame)
    assert type(violation) is ProtocolViolation and violation.kind == kind and violation.detail


@pytest.mark.parametrize(("frame", "kind"), [
    ('{"event":"media","streamSid":"MZ1","media":{"payload":"//8="}}', "media_before_start"),
    ('{"event":"mark","streamSid":"MZ1","mark":{"name":"1"}}', "unknown_stream"),
    ('{"event":"start","streamSid":"MZ1","start":"x"}', "invalid_start"),
    (with_start(callSid=None), "invalid_start"),
    (with_start(callSid=""), "invalid_start"),
    ('{"event":"start","start":{"callSid":"CA1"}}', "invalid_start"),
    (with_start(mediaFormat={"encoding": "audio/l16", "sampleRate": 16000}), "unsupported_codec"),
    (with_start(mediaFormat={"encoding": "audio/x-mulaw", "sampleRate": 16000}), "unsupported_codec"),
])
def test_violations_before_start(frame, kind):
    face = TwilioStream()
    violation = face.decode(frame)
    assert type(violation) is ProtocolViolation and violation.kind == kind
    assert face.stream_sid is None  # a refused start leaves the face unstarted


def test_violation_details_are_todays():
    assert started().decode('{"event":"dance"}') == ProtocolViolation("unknown_event", "unknown event 'dance'")
    assert started().decode('{"event":"' + "x" * 100 + '"}').detail == f"unknown event {'x' * 40!r}"
    bad = with_start(mediaFormat={"encoding": "audio/l16", "sampleRate": 16000})
    assert TwilioStream().decode(bad) == ProtocolViolation(
        "unsupported_codec", "media format audio/l16/16000; audio/x-mulaw/8000 expected")


def test_binary_frames_are_violations():
    assert started().decode_binary(b"\x00" * 160) == ProtocolViolation("binary_frame", "160 bytes")


def test_frames_to_twilio_are_exact():
    face = started()
    payload = "AAEC/w=="
    assert face.encode(PlayAudio(payload)) == b'{"event":"media","streamSid":"MZ1","media":{"payload":"AAEC/w=="}}'
    assert face.encode(SendMark("3.7")) == b'{"event":"mark","streamSid":"MZ1","mark":{"name":"3.7"}}'
    assert face.encode(ClearPlayback()) == b'{"event":"clear","streamSid":"MZ1"}'
    assert (face.play(payload), face.mark("3.7"), face.clear()) == (
        face.encode(PlayAudio(payload)), face.encode(SendMark("3.7")), face.encode(ClearPlayback()))
    # A hostile payload cannot break out of its JSON string.
    assert orjson.loads(face.encode(PlayAudio('x","event":"clear')))["media"]["payload"] == 'x","event":"clear'


def test_round_trip_parses_back_as_twilio_json():
    face = TwilioStream()
    sid = 'MZ"\\odd'  # escaped once, at start
    frame = orjson.loads(START_TEXT)
    frame["streamSid"] = frame["start"]["streamSid"] = sid
    assert face.decode(orjson.dumps(frame)).stream_id == sid
    media = {"event": "media", "streamSid": sid, "media": {"track": "inbound", "payload": "no+JhoaJjpzS/w=="}}
    payload = face.decode(orjson.dumps(media)).payload
    assert orjson.loads(face.encode(PlayAudio(payload))) == {
        "event": "media", "streamSid": sid, "media": {"payload": "no+JhoaJjpzS/w=="}}
    assert orjson.loads(face.encode(SendMark("m-1"))) == {"event": "mark", "streamSid": sid, "mark": {"name": "m-1"}}
    assert orjson.loads(face.encode(ClearPlayback())) == {"event": "clear", "streamSid": sid}
    echo = face.decode(orjson.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "m-1"}}))
    assert echo == MarkPlayed("m-1")


def test_encode_refuses_what_is_not_a_carrier_action():
    with pytest.raises(TypeError, match="not a carrier action"):
        started().encode(StreamStop())  # type: ignore[arg-type]
