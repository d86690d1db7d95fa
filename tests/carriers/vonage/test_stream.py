"""The Vonage stream face: websocket:connected into the stream's start, binary L16 frames into 24 kHz caller
audio, notify/dtmf/cleared decoded, every malformed frame a bounded violation; actions encoded into Frames:
whole 20 ms binary frames, notifies after the audio they follow, the held partial frame flushed padded at the
answer's last mark and dropped by a clear."""

from __future__ import annotations

import base64

import numpy as np
import orjson
import pytest

from gateway.carriers.vonage.stream import VonageStream, notify, stream_rate
from gateway.core.codec import l16
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
)

CALL = "63f61863-4a51-4f6b-86e1-46edebcf9356"
TOKEN = "v1.1790000000.nonce.c2lnbmF0dXJl"
CLEAR = (b'{"action":"clear"}', False)


def connected(rate: int = 16000, **headers: object) -> bytes:
    body = {"event": "websocket:connected", "content-type": f"audio/l16;rate={rate}", "call_uuid": CALL,
            "region_url": "https://api-us-3.vonage.com", "token": TOKEN, "from": "447700900001",
            "to": "447700900000", **headers}
    return orjson.dumps({k: v for k, v in body.items() if v is not None})


def started(rate: int = 16000) -> VonageStream:
    face = VonageStream(rate)
    assert type(face.decode(connected(rate))) is StreamStart
    return face


def pcm24(ms: float, value: int = 1000) -> str:
    """`ms` of constant 24 kHz PCM, base64 (a constant survives linear interpolation unchanged)."""
    return base64.b64encode(np.full(int(24 * ms), value, "<i2").tobytes()).decode()


def mark(name: str) -> tuple[bytes, bool]:
    return notify(name), False


def kinds(frames: list[tuple[bytes, bool]]) -> list[str]:
    """Each frame as `audio` (a binary frame) or the name of the notify it is."""
    return ["audio" if binary else orjson.loads(data).get("payload", {}).get("name", "clear")
            for data, binary in frames]


# --- from Vonage -----------------------------------------------------------------------------------


def test_connected_starts_the_stream_with_the_headers_as_parameters():
    face = VonageStream(16000)
    event = face.decode(connected())
    assert event == StreamStart(stream_id=CALL, call_id=CALL, account_id=None, codec=l16(24000), parameters={
        "region_url": "https://api-us-3.vonage.com", "token": TOKEN, "from": "447700900001", "to": "447700900000"})
    assert face.call_id == CALL and face.rate == 16000
    again = face.decode(connected())
    assert again == ProtocolViolation("duplicate_start", "a second websocket:connected on one stream")


def test_the_rate_is_the_one_vonage_says():
    face = VonageStream(16000)  # the NCCO asked for 16 kHz, 8 kHz came
    assert type(face.decode(connected(8000))) is StreamStart and face.rate == 8000
    assert type(face.decode_binary(b"\0" * 320)) is CallerAudio
    assert face.decode_binary(b"\0" * 640).kind == "frame_size"


def test_only_string_headers_are_parameters_and_they_are_bounded():
    many = {f"h{i}": "v" for i in range(40)}
    event = VonageStream().decode(connected(nested={"a": 1}, number=5, long="x" * 2000, **many))
    assert type(event) is StreamStart
    assert "nested" not in event.parameters and "number" not in event.parameters
    assert len(event.parameters) == 16 and all(len(v) <= 512 for v in event.parameters.values())


@pytest.mark.parametrize(("content_type", "rate"), [
    ("audio/l16;rate=16000", 16000), ("audio/L16; rate=8000", 8000), ("AUDIO/L16;RATE=16000", 16000),
    ("audio/l16;rate=24000", None), ("audio/l16", None), ("audio/pcmu;rate=8000", None), (16000, None),
    ("audio/l16;rate=abc", None)])
def test_stream_rate(content_type: object, rate: int | None):
    assert stream_rate(content_type) == rate


@pytest.mark.parametrize(("frame", "kind"), [
    (connected(rate=24000), "unsupported_codec"),
    (connected(**{"content-type": None}), "unsupported_codec"),
    (connected(call_uuid=None), "invalid_start"),
    (connected(call_uuid="not-a-uuid"), "invalid_start"),
    (connected(call_uuid=12345), "invalid_start"),
])
def test_a_bad_connected_is_refused(frame: bytes, kind: str):
    face = VonageStream()
    event = face.decode(frame)
    assert type(event) is ProtocolViolation and event.kind == kind
    assert face.call_id is None  # still waiting for a good one
    assert type(face.decode(connected())) is StreamStart


@pytest.mark.parametrize("rate", [16000, 8000])
def test_caller_audio_is_converted_to_24_khz(rate: int):
    face = started(rate)
    size = rate // 50 * 2
    samples = np.full(size // 2, -1234, "<i2")
    outs = [face.decode_binary(samples.tobytes()) for _ in range(5)]
    assert all(type(e) is CallerAudio for e in outs)
    pcm = [np.frombuffer(base64.b64decode(e.payload), "<i2") for e in outs]
    assert [len(p) for p in pcm] == [480] * 5  # 20 ms at 24 kHz each, exactly
    assert np.all(np.concatenate(pcm)[3:] == -1234)  # the first input sample's span leans on the primed zero


def test_events_from_vonage():
    face = started()
    assert face.decode(b'{"event":"websocket:notify","payload":{"name":"3.7"}}') == MarkPlayed("3.7")
    assert face.decode('{"event":"websocket:dtmf","digit":"5","duration":260}') == Dtmf("5")
    assert face.decode(b'{"event":"websocket:dtmf","digit":7}') == Dtmf("7")
    assert face.decode(b'{"event":"websocket:cleared"}') == StreamNoise("cleared")


@pytest.mark.parametrize(("data", "kind"), [
    (b"{not json", "invalid_json"),
    (b"[1,2]", "invalid_frame"),
    (b'{"no_event":true}', "missing_event"),
    (b'{"event":42}', "missing_event"),
    (b'{"event":"websocket:dance"}', "unknown_event"),
    (b'{"event":"websocket:notify"}', "invalid_mark"),
    (b'{"event":"websocket:notify","payload":{"name":5}}', "invalid_mark"),
    (b'{"event":"websocket:notify","payload":"3.7"}', "invalid_mark"),
    (b'{"event":"websocket:dtmf"}', "invalid_dtmf"),
    (b'{"event":"websocket:dtmf","digit":""}', "invalid_dtmf"),
    (b'{"event":"websocket:dtmf","digit":[1]}', "invalid_dtmf"),
])
def test_malformed_text_frames(data: bytes, kind: str):
    event = started().decode(data)
    assert type(event) is ProtocolViolation and event.kind == kind
    assert len(event.detail) < 100  # bounded: no frame echoed back whole


@pytest.mark.parametrize("size", [0, 1, 319, 320, 639, 641, 960, 64000])
def test_a_binary_frame_that_is_not_20_ms_is_refused(size: int):
    event = started(16000).decode_binary(b"\0" * size)
    assert event == ProtocolViolation("frame_size", f"{size} bytes; 640 expected (20 ms of L16 at 16000 Hz)")


def test_audio_before_connected_is_refused():
    face = VonageStream()
    assert face.decode_binary(b"\0" * 640) == ProtocolViolation("media_before_start",
                                                                "audio frame before websocket:connected")


# --- to Vonage -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [16000, 8000])
def test_answer_audio_goes_out_in_whole_frames(rate: int):
    face = started(rate)
    frames = face.encode(PlayAudio(pcm24(100)))
    assert len(frames) == 5 and all(binary and len(data) == rate // 25 for data, binary in frames)
    audio = np.frombuffer(b"".join(data for data, _ in frames), "<i2")
    assert np.all(audio[1:] == 1000)


def test_a_partial_frame_is_held_then_completed():
    face = started(16000)
    assert kinds(face.encode(PlayAudio(pcm24(30)))) == ["audio"]  # 1 frame, 10 ms held
    assert kinds(face.encode(PlayAudio(pcm24(5)))) == []  # 15 ms held
    assert kinds(face.encode(PlayAudio(pcm24(5)))) == ["audio"]  # completed: 0 held
    assert kinds(face.encode(SendMark("0.1"))) == ["0.1"]  # nothing held: the notify goes at once


def test_a_mark_over_held_audio_waits_for_the_frame_that_completes_it():
    face = started(16000)
    assert kinds(face.encode(PlayAudio(pcm24(50)))) == ["audio", "audio"]  # 10 ms held
    assert face.encode(SendMark("0.1")) == []  # deferred
    assert face.encode(SendMark("0.2")) == []
    # The next frame holds the 10 ms the marks follow: the notifies go right after it, then the rest.
    assert kinds(face.encode(PlayAudio(pcm24(50)))) == ["audio", "0.1", "0.2", "audio", "audio"]
    assert kinds(face.encode(SendMark("0.3"))) == ["0.3"]


def test_the_last_mark_flushes_the_held_frame_padded_with_silence():
    face = started(16000)
    face.encode(PlayAudio(pcm24(30)))  # 10 ms held
    face.encode(SendMark("0.1"))  # deferred
    frames = face.encode(SendMark("0.2", last=True))
    assert kinds(frames) == ["audio", "0.1", "0.2"]
    tail = np.frombuffer(frames[0][0], "<i2")
    assert len(tail) == 320 and np.all(tail[:160] == 1000) and np.all(tail[160:] == 0)
    assert kinds(face.encode(SendMark("0.3", last=True))) == ["0.3"]  # nothing held: the notify alone


def test_a_clear_drops_the_held_frame_and_the_deferred_marks():
    face = started(16000)
    face.encode(PlayAudio(pcm24(30)))
    face.encode(SendMark("0.1"))
    assert face.encode(ClearPlayback()) == [CLEAR]
    assert kinds(face.encode(SendMark("1.1", last=True))) == ["1.1"]  # no held audio, no stale notify
    ramp = base64.b64encode(np.arange(-2400, 2400, 5, dtype="<i2").tobytes()).decode()  # 40 ms
    assert face.encode(PlayAudio(ramp)) == started(16000).encode(PlayAudio(ramp))  # as on a fresh stream


def test_notify_and_clear_frames():
    face = started()
    assert face.encode(SendMark('a"b')) == [(b'{"action":"notify","payload":{"name":"a\\"b"}}', False)]
    assert orjson.loads(notify("0.1")) == {"action": "notify", "payload": {"name": "0.1"}}
    assert face.encode(ClearPlayback()) == [CLEAR]
    with pytest.raises(TypeError):
        face.encode(StreamNoise("x"))  # type: ignore[arg-type]


@pytest.mark.parametrize("payload", ["!!!not base64", "QUJD=x", "é"])
def test_answer_audio_that_is_not_base64_is_dropped_and_counted(payload: str):
    face = started()
    assert face.encode(PlayAudio(payload)) == []
    assert face.bad_payloads == 1
    assert kinds(face.encode(PlayAudio(pcm24(20)))) == ["audio"]
