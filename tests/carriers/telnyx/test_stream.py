"""The Telnyx stream face: each frame of Telnyx's media WebSocket (TX-A) decoded into the core's events,
each action encoded, round trips, and every malformed frame a bounded ProtocolViolation."""

from __future__ import annotations

import orjson
import pytest

from gateway.carriers.telnyx.stream import TelnyxStream
from gateway.core.codec import PCMA, PCMU, Codec
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

CALL = "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ"  # TX-A's example start
STREAM = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC"
USER = "3E6F995F-85F7-4705-9741-53B116D28237"


def start_frame(encoding: str = "PCMU", stream_id: object = STREAM, **start: object) -> bytes:
    body = {"user_id": USER, "call_control_id": CALL, "call_session_id": "ff55a038-6f5d-11ef-9692-02420aeffb1f",
            "from": "+13122010094", "to": "+13122123456", "tags": ["TAG1"], "client_state": "aGF2ZQ==",
            "custom_parameters": {"token": "v1.1.n.s", "from": "+13122010094"},
            "media_format": {"encoding": encoding, "sample_rate": 8000, "channels": 1}, **start}
    return orjson.dumps({"event": "start", "sequence_number": "1", "stream_id": stream_id, "start": body})


def started(codec: Codec = PCMU) -> TelnyxStream:
    face = TelnyxStream(codec)
    assert type(face.decode(start_frame(codec.name.upper()))) is StreamStart
    return face


@pytest.mark.parametrize("codec", [PCMU, PCMA])
def test_start(codec: Codec):
    face = TelnyxStream(codec)
    assert face.decode('{"event":"connected","version":"1.0.0"}') == StreamNoise("connected")
    event = face.decode(start_frame(codec.name.upper()))
    assert event == StreamStart(stream_id=STREAM, call_id=CALL, account_id=USER,
                                parameters={"token": "v1.1.n.s", "from": "+13122010094"}, codec=codec)
    assert face.stream_id == STREAM
    assert face.decode(start_frame(codec.name.upper())) == ProtocolViolation("duplicate_start",
                                                                             "a second start frame on one stream")


def test_start_variants_and_refusals():
    plain = TelnyxStream().decode(start_frame(user_id="not-a-uuid", custom_parameters=None,
                                              media_format={"encoding": "PCMU", "sample_rate": "8000"}))
    assert type(plain) is StreamStart and plain.account_id is None and plain.parameters == {}
    numbers = TelnyxStream().decode(start_frame(custom_parameters={"n": 5}))
    assert type(numbers) is StreamStart and numbers.parameters == {"n": "5"}
    for face, frame, kind in [
        (TelnyxStream(), start_frame(call_control_id="CA" + "ab" * 16), "invalid_start"),
        (TelnyxStream(), start_frame(call_control_id=None), "invalid_start"),
        (TelnyxStream(), start_frame(stream_id=""), "invalid_start"),
        (TelnyxStream(), start_frame(stream_id=7), "invalid_start"),
        (TelnyxStream(), start_frame(stream_id="s" * 200), "invalid_start"),
        (TelnyxStream(), start_frame(stream_id=None), "invalid_start"),
        (TelnyxStream(), b'{"event":"start","stream_id":"s"}', "invalid_start"),
        (TelnyxStream(), b'{"event":"start","stream_id":"s","start":[]}', "invalid_start"),
        (TelnyxStream(), start_frame("PCMA"), "unsupported_codec"),  # the answer asked for PCMU
        (TelnyxStream(PCMA), start_frame("PCMU"), "unsupported_codec"),
        (TelnyxStream(), start_frame("G722"), "unsupported_codec"),
        (TelnyxStream(), start_frame(media_format={"encoding": "PCMU", "sample_rate": 16000}), "unsupported_codec"),
        (TelnyxStream(), start_frame(media_format={"encoding": "PCMU", "sample_rate": 8000, "channels": 2}),
         "unsupported_codec"),
        (TelnyxStream(), start_frame(media_format=None), "unsupported_codec"),
    ]:
        event = face.decode(frame)
        assert type(event) is ProtocolViolation and event.kind == kind, (frame, event)
        assert face.stream_id is None


def test_media():
    media = {"event": "media", "sequence_number": "4", "stream_id": STREAM,
             "media": {"track": "inbound", "chunk": "2", "timestamp": "5", "payload": "no+JhoaJjpw="}}
    assert TelnyxStream().decode(orjson.dumps(media)).kind == "media_before_start"
    face = started()
    assert face.decode(orjson.dumps(media)) == CallerAudio("no+JhoaJjpw=")  # passed through untouched
    assert face.decode('{"event":"media","media":{"payload":"AAA="}}') == CallerAudio("AAA=")  # no stream_id
    for frame, kind in [
        ({**media, "stream_id": "another"}, "unknown_stream"),
        ({**media, "media": {"payload": ""}}, "invalid_media"),
        ({**media, "media": {"payload": 5}}, "invalid_media"),
        ({**media, "media": {}}, "invalid_media"),
        ({**media, "media": "x"}, "invalid_media"),
        ({**media, "media": {"payload": "//8=", "track": "outbound"}}, "unexpected_track"),
    ]:
        assert face.decode(orjson.dumps(frame)).kind == kind


def test_mark_dtmf_stop_and_error():
    assert TelnyxStream().decode(b'{"event":"mark","mark":{"name":"m1"}}').kind == "unknown_stream"
    face = started()
    mark = {"event": "mark", "sequence_number": "7", "stream_id": STREAM, "mark": {"name": "g1.7"}}
    assert face.decode(orjson.dumps(mark)) == MarkPlayed("g1.7")
    assert face.decode(b'{"event":"mark","mark":{"name":"g1.8"}}') == MarkPlayed("g1.8")
    assert face.decode(orjson.dumps({**mark, "stream_id": "other"})).kind == "unknown_stream"
    assert face.decode(b'{"event":"mark","mark":{}}').kind == "invalid_mark"
    assert face.decode(b'{"event":"mark","mark":"g1"}').kind == "invalid_mark"
    dtmf = {"event": "dtmf", "stream_id": STREAM, "occurred_at": "2024-09-10T12:00:00Z", "sequence_number": "3",
            "dtmf": {"digit": "5"}}
    assert face.decode(orjson.dumps(dtmf)) == Dtmf("5")
    for bad in ({}, {"digit": ""}, {"digit": 5}, {"digit": "123456789"}):
        assert face.decode(orjson.dumps({**dtmf, "dtmf": bad})).kind == "invalid_dtmf"
    assert face.decode(b'{"event":"dtmf","digit":"5"}').kind == "invalid_dtmf"
    stop = {"event": "stop", "sequence_number": "9", "stream_id": STREAM,
            "stop": {"user_id": USER, "call_control_id": CALL}}
    assert face.decode(orjson.dumps(stop)) == StreamStop()
    assert face.decode(b'{"event":"stop"}') == StreamStop()
    assert face.decode(orjson.dumps({**stop, "stream_id": "other"})).kind == "unknown_stream"
    assert TelnyxStream().decode(b'{"event":"stop"}') == StreamStop()  # the call ended before the start
    error = {"event": "error", "stream_id": STREAM,
             "payload": {"code": 100003, "title": "malformed_frame", "detail": "The frame is malformed" * 20}}
    event = face.decode(orjson.dumps(error))
    assert event == ProtocolViolation("stream_error", "Telnyx stream error 100003: malformed_frame")
    assert face.decode(b'{"event":"error"}') == ProtocolViolation("stream_error", "error frame without a payload")
    long = face.decode(orjson.dumps({"event": "error", "payload": {"code": "x" * 99, "detail": "y" * 999}}))
    assert type(long) is ProtocolViolation and len(long.detail) < 180


@pytest.mark.parametrize(("frame", "kind"), [
    (b"{not json", "invalid_json"), (b"[1,2]", "invalid_frame"), (b'"media"', "invalid_frame"),
    (b'{"event":"dance"}', "unknown_event"), (b'{"no_event":1}', "missing_event"), (b'{"event":5}', "missing_event"),
    (b'{"event":"clear"}', "unknown_event"),  # ours to send, never Telnyx's
])
def test_malformed_frames_have_bounded_kinds(frame: bytes, kind: str):
    assert started().decode(frame).kind == kind
    assert TelnyxStream().decode_binary(b"\x00" * 3) == ProtocolViolation("binary_frame", "3 bytes")


def test_encode_round_trips():
    face = started()
    assert orjson.loads(face.encode(PlayAudio("//8A"))) == {"event": "media", "media": {"payload": "//8A"}}
    mark = orjson.loads(face.encode(SendMark('g2."quoted"', last=True)))
    assert mark == {"event": "mark", "mark": {"name": 'g2."quoted"'}}
    assert orjson.loads(face.encode(ClearPlayback())) == {"event": "clear"}
    # Telnyx's answer to our mark decodes back into the mark we sent.
    echo = {"event": "mark", "sequence_number": "12", "stream_id": STREAM, "mark": mark["mark"]}
    assert face.decode(orjson.dumps(echo)) == MarkPlayed('g2."quoted"')
    assert b" " not in face.encode(PlayAudio("AAAA"))  # compact JSON
    assert started(PCMA).encode(PlayAudio("1dXV")) == b'{"event":"media","media":{"payload":"1dXV"}}'
    with pytest.raises(TypeError):
        face.encode(StreamStop())  # type: ignore[arg-type]
