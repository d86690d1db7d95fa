"""The Plivo stream face: each Plivo event decoded into the core's events, each action encoded, round trips."""

from __future__ import annotations

import orjson
import pytest

from gateway.carriers.plivo.stream import PlivoStream
from gateway.core.codec import PCMU
from gateway.core.events import (
    CallerAudio,
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

CALL = "12345678-1234-1234-1234-123456789abc"
STREAM = "87654321-4321-4321-4321-cba987654321"


def start_frame(**start: object) -> bytes:
    body = {"callId": CALL, "streamId": STREAM, "accountId": "MAXXXXXXXXXXXXXXXXXX", "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}, **start}
    return orjson.dumps({"event": "start", "sequenceNumber": 1, "start": body,
                         "extra_headers": "token=" + b"v1.1.n.s".hex() + ";from=" + b"+1415".hex()})


def started() -> PlivoStream:
    face = PlivoStream()
    assert type(face.decode(start_frame())) is StreamStart
    return face


def test_start():
    face = PlivoStream()
    event = face.decode(start_frame())
    assert event == StreamStart(stream_id=STREAM, call_id=CALL, account_id="MAXXXXXXXXXXXXXXXXXX",
                                parameters={"token": "v1.1.n.s", "from": "+1415"}, codec=PCMU)
    assert face.stream_id == STREAM
    assert face.decode(start_frame()) == ProtocolViolation("duplicate_start", "a second start frame on one stream")


def test_start_variants_and_refusals():
    inside = orjson.dumps({"event": "start", "start": {"callId": CALL, "streamId": STREAM,
                                                       "extra_headers": "token=" + b"t".hex()}})
    event = PlivoStream().decode(inside)
    assert type(event) is StreamStart and event.parameters == {"token": "t"} and event.account_id is None
    rate = PlivoStream().decode(start_frame(mediaFormat={"encoding": "audio/x-mulaw;rate=8000", "sampleRate": 8000}))
    assert type(rate) is StreamStart
    for frame, kind in [
        (start_frame(callId="CA" + "ab" * 16), "invalid_start"),
        (start_frame(streamId=""), "invalid_start"),
        (start_frame(streamId=7), "invalid_start"),
        (b'{"event":"start"}', "invalid_start"),
        (start_frame(mediaFormat={"encoding": "audio/x-l16", "sampleRate": 8000}), "unsupported_codec"),
        (start_frame(mediaFormat={"encoding": "audio/x-mulaw", "sampleRate": 16000}), "unsupported_codec"),
    ]:
        face = PlivoStream()
        event = face.decode(frame)
        assert type(event) is ProtocolViolation and event.kind == kind, (frame, event)
        assert face.stream_id is None


def test_media():
    face = PlivoStream()
    media = {"event": "media", "sequenceNumber": 2, "streamId": STREAM,
             "media": {"track": "inbound", "timestamp": "1705312200000", "chunk": 1, "payload": "//8="}}
    assert face.decode(orjson.dumps(media)).kind == "media_before_start"
    face = started()
    assert face.decode(orjson.dumps(media)) == CallerAudio("//8=")
    assert face.decode('{"event":"media","media":{"payload":"AAA="}}') == CallerAudio("AAA=")  # no streamId
    for frame, kind in [
        ({**media, "streamId": "another"}, "unknown_stream"),
        ({**media, "media": {"payload": ""}}, "invalid_media"),
        ({**media, "media": {"payload": 5}}, "invalid_media"),
        ({**media, "media": "x"}, "invalid_media"),
        ({**media, "media": {"payload": "//8=", "track": "outbound"}}, "unexpected_track"),
    ]:
        assert face.decode(orjson.dumps(frame)).kind == kind


def test_played_stream_cleared_audio_dtmf_and_stop():
    face = PlivoStream()
    assert face.decode(b'{"event":"playedStream","streamId":"x","name":"m1"}').kind == "unknown_stream"
    face = started()
    played = {"event": "playedStream", "streamId": STREAM, "name": "g1.7"}
    assert face.decode(orjson.dumps(played)) == MarkPlayed("g1.7")
    assert face.decode(orjson.dumps({**played, "streamId": "other"})).kind == "unknown_stream"
    assert face.decode(b'{"event":"playedStream","streamId":"' + STREAM.encode() + b'"}').kind == "invalid_mark"
    cleared = {"sequenceNumber": 9, "event": "clearedAudio", "streamId": STREAM}
    assert face.decode(orjson.dumps(cleared)) == StreamNoise("clearedAudio")
    assert face.decode(orjson.dumps({**cleared, "streamId": "other"})).kind == "unknown_stream"
    assert face.decode(b'{"event":"dtmf","streamId":"s","dtmf":{"digit":"5"}}') == Dtmf("5")
    assert face.decode(b'{"event":"dtmf","digit":"#"}') == Dtmf("#")
    assert face.decode(b'{"event":"dtmf","dtmf":{}}').kind == "invalid_dtmf"
    assert face.decode(b'{"event":"stop"}') == StreamStop()


@pytest.mark.parametrize(("frame", "kind"), [
    (b"{not json", "invalid_json"), (b"[1,2]", "invalid_frame"), (b'{"event":"dance"}', "unknown_event"),
    (b'{"no_event":1}', "missing_event"), (b'{"event":5}', "missing_event"),
])
def test_malformed_frames_have_bounded_kinds(frame: bytes, kind: str):
    assert started().decode(frame).kind == kind
    assert PlivoStream().decode_binary(b"\x00" * 3) == ProtocolViolation("binary_frame", "3 bytes")


def test_encode_round_trips():
    face = started()
    play = orjson.loads(face.encode(PlayAudio("//8A")))
    assert play == {"event": "playAudio", "media": {"contentType": "audio/x-mulaw", "sampleRate": 8000,
                                                    "payload": "//8A"}}
    mark = orjson.loads(face.encode(SendMark('g2."quoted"')))
    assert mark == {"event": "checkpoint", "streamId": STREAM, "name": 'g2."quoted"'}
    assert orjson.loads(face.encode(ClearPlayback())) == {"event": "clearAudio", "streamId": STREAM}
    # Plivo's answer to our checkpoint decodes back into the mark we sent.
    echo = {"event": "playedStream", "streamId": mark["streamId"], "name": mark["name"]}
    assert face.decode(orjson.dumps(echo)) == MarkPlayed('g2."quoted"')
    assert b" " not in face.encode(PlayAudio("AAAA"))  # compact JSON
    # Keys played into the call (send_dtmf): Plivo's sendDTMF, on the stream.
    assert face.encode(SendDigits("12#")) == b'{"event":"sendDTMF","dtmf":"12#"}'
    with pytest.raises(TypeError):
        face.encode(StreamStop())  # type: ignore[arg-type]
