"""The Realtime face: server frames of both dialects in, typed events out; actions in, client frames out.

Server events are built with the shapes of protocol-reference.md §1.4 (beta) and §2.3 (GA renames); client
events are checked against the field lists of §1.3 (the names are unchanged in GA, §2.3).
"""

import base64

import orjson
import pytest

from gateway.config import Agent, TurnDetection
from gateway.core.codec import PCMA, PCMU, Codec, l16
from gateway.core.events import (
    BENIGN,
    FATAL,
    RECOVERABLE,
    TRUNCATE_TOO_LONG,
    WARNING,
    AppendAudio,
    AudioDelta,
    AudioDone,
    CancelResponse,
    CommitInput,
    ConfigureSession,
    Greet,
    Inform,
    ItemAdded,
    ItemTruncated,
    RequestResponse,
    ResponseCreated,
    ResponseDone,
    RestoreConversation,
    Say,
    SendToolOutput,
    SendUserText,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TranscriptDelta,
    TranscriptDone,
    TranscriptFailed,
    TruncateItem,
    UpstreamError,
    UpstreamIgnored,
    UpstreamUnreadable,
)
from gateway.core.stats import TOKEN_KINDS
from gateway.realtime import dialect as shapes
from gateway.realtime.face import RealtimeFace, parse_usage
from tests.realtime.test_dialect import (
    BETA_SESSION_FIELDS,
    GA_AUDIO_INPUT,
    GA_AUDIO_OUTPUT,
    GA_SESSION_FIELDS,
)

DIALECTS = ("ga", "beta")

# --- client-event field lists, protocol-reference.md §1.3 (unchanged names in GA, §2.3) -----------
CLIENT_EVENT_FIELDS = {
    "session.update": {"type", "event_id", "session"},
    "input_audio_buffer.append": {"type", "event_id", "audio"},
    "input_audio_buffer.commit": {"type", "event_id"},
    "input_audio_buffer.clear": {"type", "event_id"},
    "conversation.item.create": {"type", "event_id", "item", "previous_item_id"},
    "conversation.item.truncate": {"type", "event_id", "item_id", "content_index", "audio_end_ms"},
    "conversation.item.delete": {"type", "event_id", "item_id"},
    "conversation.item.retrieve": {"type", "event_id", "item_id"},
    "response.create": {"type", "event_id", "response"},
    "response.cancel": {"type", "event_id", "response_id"},
}
CLIENT_EVENT_REQUIRED = {
    "session.update": {"type", "session"},
    "input_audio_buffer.append": {"type", "audio"},
    "input_audio_buffer.commit": {"type"},
    "conversation.item.create": {"type", "item"},
    "conversation.item.truncate": {"type", "item_id", "content_index", "audio_end_ms"},
    "response.create": {"type"},
    "response.cancel": {"type"},
}
ITEM_FIELDS = {"id", "type", "object", "status", "role", "content", "call_id", "name", "arguments", "output"}
# Content part types a client may create, by dialect and role (§1.3 item shape; §2.3 GA renames).
CONTENT_TYPES = {
    "ga": {"user": {"input_text", "input_audio", "input_image"}, "assistant": {"output_text"},
           "system": {"input_text"}},
    "beta": {"user": {"input_text", "input_audio"}, "assistant": {"text"}, "system": {"input_text"}},
}
BETA_RESPONSE_FIELDS = {"modalities", "instructions", "voice", "output_audio_format", "tools", "tool_choice",
                        "temperature", "max_response_output_tokens", "conversation", "input", "metadata"}
GA_RESPONSE_FIELDS = {"audio", "conversation", "input", "instructions", "max_output_tokens", "metadata",
                      "output_modalities", "prompt", "reasoning", "parallel_tool_calls", "tool_choice", "tools"}
RESPONSE_FIELDS = {"ga": GA_RESPONSE_FIELDS, "beta": BETA_RESPONSE_FIELDS}
SESSION_FIELDS = {"ga": GA_SESSION_FIELDS, "beta": BETA_SESSION_FIELDS}

# 20 ms of μ-law (160 bytes = 216 base64 characters) whose base64 holds '/', '+' and no padding.
AUDIO = base64.b64encode(bytes((0xFF, 0xFB, 0xEF, 0x7F, 0x3E, 0xF8)) * 26 + b"\xfe\xff\xfc\xfb").decode()
assert len(AUDIO) == 216 and "/" in AUDIO and "+" in AUDIO
PADDED = "f39/fw+A/w=="  # short chunk, padded


def face(dialect="ga", codec=PCMU, agent=None):
    return RealtimeFace(dialect, agent or Agent(), codec)


@pytest.fixture(params=DIALECTS)
def any_face(request):
    return face(request.param)


@pytest.fixture(params=("bytes", "str"))
def frame(request):
    """Serialize a server event as the socket would hand it over: a bytes or a str frame."""
    if request.param == "bytes":
        return orjson.dumps
    return lambda event: orjson.dumps(event).decode()


# --- realistic server events ----------------------------------------------------------------------

def audio_delta(name, **over):
    event = {"type": name, "event_id": "event_D1", "response_id": "resp_1", "item_id": "item_A1",
             "output_index": 0, "content_index": 0, "delta": AUDIO}
    return {**event, **over}


GA_USAGE = {
    "total_tokens": 1310, "input_tokens": 1090, "output_tokens": 220,
    "input_token_details": {"text_tokens": 590, "audio_tokens": 500, "image_tokens": 0, "cached_tokens": 768,
                            "cached_tokens_details": {"text_tokens": 512, "audio_tokens": 256, "image_tokens": 0}},
    "output_token_details": {"text_tokens": 40, "audio_tokens": 180},
}
GA_USAGE_BY_KIND = {"input_text": 590, "input_audio": 500, "input_cached": 768, "input_cached_audio": 256,
                    "output_text": 40,
                    "output_audio": 180}
FAILED_DETAILS = {"type": "failed", "error": {"type": "server_error", "code": "internal_error"}}

SERVER_EVENTS = [
    # (id, server event, expected typed event)
    ("ga audio delta", audio_delta("response.output_audio.delta"), AudioDelta("resp_1", "item_A1", 0, AUDIO)),
    ("beta audio delta", audio_delta("response.audio.delta", content_index=1, delta=PADDED),
     AudioDelta("resp_1", "item_A1", 1, PADDED)),
    ("ga audio done", {"type": "response.output_audio.done", "event_id": "event_D2", "response_id": "resp_1",
                       "item_id": "item_A1", "output_index": 0, "content_index": 0}, AudioDone("item_A1")),
    ("beta audio done", {"type": "response.audio.done", "event_id": "event_D2", "response_id": "resp_1",
                         "item_id": "item_A2", "output_index": 0, "content_index": 0}, AudioDone("item_A2")),
    ("ga transcript delta", {"type": "response.output_audio_transcript.delta", "event_id": "event_T1",
                             "response_id": "resp_1", "item_id": "item_A1", "output_index": 0,
                             "content_index": 0, "delta": "Hello, "}, TranscriptDelta("item_A1", "Hello, ")),
    ("beta transcript delta", {"type": "response.audio_transcript.delta", "event_id": "event_T1",
                               "response_id": "resp_1", "item_id": "item_A1", "output_index": 0,
                               "content_index": 0, "delta": "thanks"}, TranscriptDelta("item_A1", "thanks")),
    ("ga transcript done", {"type": "response.output_audio_transcript.done", "event_id": "event_T2",
                            "response_id": "resp_1", "item_id": "item_A1", "output_index": 0,
                            "content_index": 0, "transcript": "Hello, how can I help?"},
     TranscriptDone("assistant", "item_A1", "Hello, how can I help?")),
    ("beta transcript done", {"type": "response.audio_transcript.done", "event_id": "event_T2",
                              "response_id": "resp_1", "item_id": "item_A1", "output_index": 0,
                              "content_index": 0, "transcript": "Bonjour"},
     TranscriptDone("assistant", "item_A1", "Bonjour")),
    ("speech started", {"type": "input_audio_buffer.speech_started", "event_id": "event_S1",
                        "audio_start_ms": 1000, "item_id": "item_U1"}, SpeechStarted("item_U1")),
    ("speech stopped", {"type": "input_audio_buffer.speech_stopped", "event_id": "event_S2",
                        "audio_end_ms": 2300, "item_id": "item_U1"}, SpeechStopped(2300)),
    ("speech stopped float", {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 2300.5,
                              "item_id": "item_U1"}, SpeechStopped(2300.5)),
    ("response created", {"type": "response.created", "event_id": "event_R1", "response": {
        "id": "resp_1", "object": "realtime.response", "status": "in_progress", "status_details": None,
        "output": [], "conversation_id": "conv_1", "usage": None}}, ResponseCreated("resp_1")),
    ("response done completed", {"type": "response.done", "event_id": "event_R2", "response": {
        "id": "resp_1", "object": "realtime.response", "status": "completed", "status_details": None,
        "output": [{"id": "item_A1", "object": "realtime.item", "type": "message", "status": "completed",
                    "role": "assistant", "content": [{"type": "output_audio", "transcript": "Hello"}]}],
        "conversation_id": "conv_1", "output_modalities": ["audio"], "usage": GA_USAGE}},
     ResponseDone("resp_1", "completed", GA_USAGE_BY_KIND, None)),
    ("response done failed", {"type": "response.done", "event_id": "event_R3", "response": {
        "id": "resp_2", "object": "realtime.response", "status": "failed", "status_details": FAILED_DETAILS,
        "output": [], "conversation_id": "conv_1", "usage": {
            "total_tokens": 0, "input_tokens": 0, "output_tokens": 0,
            "input_token_details": {"text_tokens": 0, "audio_tokens": 0, "cached_tokens": 0},
            "output_token_details": {"text_tokens": 0, "audio_tokens": 0}}}},
     ResponseDone("resp_2", "failed", {}, FAILED_DETAILS)),
    ("response done cancelled", {"type": "response.done", "event_id": "event_R4", "response": {
        "id": "resp_3", "object": "realtime.response", "status": "cancelled",
        "status_details": {"type": "cancelled", "reason": "turn_detected"}, "output": []}},
     ResponseDone("resp_3", "cancelled", None, {"type": "cancelled", "reason": "turn_detected"})),
    ("user transcript", {"type": "conversation.item.input_audio_transcription.completed", "event_id": "event_U1",
                         "item_id": "item_U1", "content_index": 0, "transcript": "I'd like to book a table.",
                         "usage": {"type": "tokens", "input_tokens": 20, "output_tokens": 8, "total_tokens": 28},
                         "logprobs": None}, TranscriptDone("user", "item_U1", "I'd like to book a table.")),
    ("user transcript failed", {"type": "conversation.item.input_audio_transcription.failed",
                                "event_id": "event_U2", "item_id": "item_U2", "content_index": 0,
                                "error": {"type": "transcription_error", "code": "audio_unintelligible",
                                          "message": "Audio data could not be transcribed.", "param": None}},
     TranscriptFailed("item_U2", {"type": "transcription_error", "code": "audio_unintelligible",
                                  "message": "Audio data could not be transcribed.", "param": None})),
    ("item truncated", {"type": "conversation.item.truncated", "event_id": "event_X1", "item_id": "item_A1",
                        "content_index": 0, "audio_end_ms": 1500}, ItemTruncated("item_A1", 1500)),
    ("output item added", {"type": "response.output_item.added", "event_id": "event_O1", "response_id": "resp_1",
                           "output_index": 0, "item": {"id": "item_A1", "object": "realtime.item",
                                                       "type": "message", "status": "in_progress",
                                                       "role": "assistant", "content": []}},
     ItemAdded("item_A1", "assistant")),
    ("output item added, function call", {"type": "response.output_item.added", "response_id": "resp_1",
                                          "output_index": 1, "item": {"id": "item_F1", "type": "function_call",
                                                                      "status": "in_progress", "call_id": "call_1",
                                                                      "name": "lookup", "arguments": ""}},
     ItemAdded("item_F1", None)),
    ("session created", {"type": "session.created", "event_id": "event_C1", "session": {
        "type": "realtime", "object": "realtime.session", "id": "sess_1", "model": "gpt-realtime",
        "expires_at": 1767225600, "output_modalities": ["audio"], "instructions": "",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}}}}, SessionCreated("sess_1")),
    ("session created without id", {"type": "session.created", "session": {"type": "realtime"}},
     SessionCreated(None)),
    ("session updated", {"type": "session.updated", "event_id": "event_C2", "session": {
        "id": "sess_1", "object": "realtime.session", "modalities": ["text", "audio"],
        "input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw"}}, SessionUpdated("sess_1")),
    ("error", {"type": "error", "event_id": "event_E1", "error": {
        "type": "invalid_request_error", "code": "response_cancel_not_active",
        "message": "Cancellation failed: no active response found", "param": None, "event_id": "evt_c1"}},
     UpstreamError(BENIGN, "response_cancel_not_active", "response_cancel_not_active", "invalid_request_error",
                   "Cancellation failed: no active response found", None)),
    ("error session expired", {"type": "error", "event_id": "event_E2", "error": {
        "type": "invalid_request_error", "code": "session_expired",
        "message": "Your session hit the maximum duration of 60 minutes.", "param": None, "event_id": None}},
     UpstreamError(RECOVERABLE, "session_expired", "session_expired", "invalid_request_error",
                   "Your session hit the maximum duration of 60 minutes.", None)),
    ("error beta shape", {"type": "error", "event_id": "event_E3", "error": {
        "type": "invalid_request_error", "code": "beta_api_shape_disabled",
        "message": "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."}},
     UpstreamError(FATAL, "beta_api_shape_disabled", "beta_api_shape_disabled", "invalid_request_error",
                   "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.", None)),
    ("error truncate too long", {"type": "error", "event_id": "event_E4", "error": {
        "type": "invalid_request_error", "code": None,
        "message": "Audio content of 1200 ms is already shorter than 1500 ms", "param": None}},
     UpstreamError(TRUNCATE_TOO_LONG, "invalid_request_error", None, "invalid_request_error",
                   "Audio content of 1200 ms is already shorter than 1500 ms", None)),
    ("error unknown parameter", {"type": "error", "event_id": "event_E5", "error": {
        "type": "invalid_request_error", "code": "unknown_parameter", "message": "Unknown parameter: 'session.foo'.",
        "param": "session.foo"}},
     UpstreamError(WARNING, "unknown_parameter", "unknown_parameter", "invalid_request_error",
                   "Unknown parameter: 'session.foo'.", "session.foo")),
]


@pytest.mark.parametrize(("event", "expected"), [(e, x) for _, e, x in SERVER_EVENTS],
                         ids=[name for name, _, _ in SERVER_EVENTS])
def test_decode_server_events_of_both_dialects(any_face, frame, event, expected):
    decoded = any_face.decode(frame(event))
    assert type(decoded) is type(expected)
    assert decoded == expected


@pytest.mark.parametrize("name", ["response.output_audio.delta", "response.audio.delta"])
def test_delta_payload_is_passed_through(any_face, frame, name):
    decoded = any_face.decode(frame(audio_delta(name)))
    assert type(decoded.payload) is str
    assert decoded.payload == AUDIO  # the carrier gets the server's base64 as it was: no decode, no re-encode
    assert len(decoded.payload) == 216


def test_delta_with_escaped_solidus_is_the_json_string():
    # A server may escape '/' as '\/' (valid JSON): the payload is the string the JSON denotes.
    raw = orjson.dumps(audio_delta("response.output_audio.delta")).replace(b"/", b"\\/")
    assert b"\\/" in raw
    assert face().decode(raw).payload == AUDIO


def test_decode_accepts_the_other_dialects_names():
    ga, beta = face("ga"), face("beta")
    for name in ("response.audio.delta", "response.output_audio.delta"):
        assert ga.decode(orjson.dumps(audio_delta(name))) == beta.decode(orjson.dumps(audio_delta(name)))


# --- robustness: nothing raises --------------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"not json", "not json", b"", "", b"\xff\xfe", "\ud800", b"{", b'{"type":"error"}{',
                                 b"[" * 2000, b"\x00"], ids=repr)
def test_not_json_is_unreadable(any_face, raw):
    assert any_face.decode(raw) == UpstreamUnreadable("invalid_json", None, len(raw))


@pytest.mark.parametrize("raw", [b"[]", b'[{"type":"error"}]', b'"response.done"', b"null", b"42", b"true", "1.5"])
def test_json_that_is_not_an_object_is_unreadable(any_face, raw):
    assert any_face.decode(raw) == UpstreamUnreadable("invalid_json", None, len(raw))


@pytest.mark.parametrize("name", ["response.output_audio.delta", "response.audio.delta"])
@pytest.mark.parametrize("drop", ["item_id", "delta"])
def test_delta_without_item_or_payload_is_malformed(any_face, name, drop):
    event = audio_delta(name)
    del event[drop]
    raw = orjson.dumps(event)
    assert any_face.decode(raw) == UpstreamUnreadable("malformed_event", name, len(raw))


@pytest.mark.parametrize("over", [{"delta": None}, {"delta": 5}, {"delta": ["a"]}, {"delta": {"b64": AUDIO}},
                                  {"item_id": None}, {"item_id": 7}, {"item_id": ["item_A1"]}])
def test_delta_with_ill_typed_item_or_payload_is_malformed(any_face, over):
    raw = orjson.dumps(audio_delta("response.output_audio.delta", **over))
    assert any_face.decode(raw) == UpstreamUnreadable("malformed_event", "response.output_audio.delta", len(raw))


@pytest.mark.parametrize(("content_index", "expected"), [
    (2, 2), ("1", 0), (1.0, 0), (True, 0), (None, 0), ([0], 0), ("absent", 0)])
def test_delta_content_index_must_be_an_int(content_index, expected):
    event = audio_delta("response.output_audio.delta", content_index=content_index)
    if content_index == "absent":
        del event["content_index"]
    assert face().decode(orjson.dumps(event)) == AudioDelta("resp_1", "item_A1", expected, AUDIO)


@pytest.mark.parametrize("response_id", [None, 12, {"id": "resp_1"}, "absent"])
def test_delta_response_id_not_a_string_is_none(response_id):
    event = audio_delta("response.audio.delta", response_id=response_id)
    if response_id == "absent":
        del event["response_id"]
    assert face().decode(orjson.dumps(event)) == AudioDelta(None, "item_A1", 0, AUDIO)


@pytest.mark.parametrize(("end", "expected"), [
    (2300, 2300), (0, 0), (2300.25, 2300.25), ("2300", None), (True, None), (False, None), (None, None),
    ([2300], None), ("absent", None)])
def test_speech_stopped_end_must_be_a_number(end, expected):
    event = {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": end, "item_id": "item_U1"}
    if end == "absent":
        del event["audio_end_ms"]
    decoded = face().decode(orjson.dumps(event))
    assert decoded == SpeechStopped(expected)
    assert type(decoded.audio_end_ms) is type(expected)  # a bool is not a number here


@pytest.mark.parametrize(("end", "expected"), [
    (1500, 1500), ("1500", None), (True, None), (1500.0, None), (None, None), ("absent", None)])
def test_truncated_end_must_be_an_int(end, expected):
    event = {"type": "conversation.item.truncated", "item_id": "item_A1", "content_index": 0, "audio_end_ms": end}
    if end == "absent":
        del event["audio_end_ms"]
    decoded = face().decode(orjson.dumps(event))
    assert decoded == ItemTruncated("item_A1", expected)
    assert type(decoded.audio_end_ms) is type(expected)


@pytest.mark.parametrize("name", ["response.output_audio_transcript.delta", "response.audio_transcript.delta"])
@pytest.mark.parametrize("delta", [None, 3, ["x"], "absent"])
def test_transcript_delta_without_text_is_malformed(name, delta):
    event = {"type": name, "item_id": "item_A1", "delta": delta}
    if delta == "absent":
        del event["delta"]
    raw = orjson.dumps(event)
    assert face().decode(raw) == UpstreamUnreadable("malformed_event", name, len(raw))


@pytest.mark.parametrize("name", ["response.output_audio_transcript.done", "response.audio_transcript.done",
                                  "conversation.item.input_audio_transcription.completed"])
@pytest.mark.parametrize("transcript", [None, "", "absent", 0, 12, {"text": "hi"}, ["hi"]])
def test_transcript_done_with_odd_transcript_is_a_string(name, transcript):
    event = {"type": name, "item_id": 5}
    if transcript != "absent":
        event["transcript"] = transcript
    decoded = face().decode(orjson.dumps(event))
    assert type(decoded) is TranscriptDone
    assert decoded.item_id is None
    assert type(decoded.text) is str
    if not transcript or transcript == "absent":
        assert decoded.text == ""


@pytest.mark.parametrize(("event", "expected"), [
    ({"type": "input_audio_buffer.speech_started"}, SpeechStarted(None)),
    ({"type": "input_audio_buffer.speech_started", "item_id": 3}, SpeechStarted(None)),
    ({"type": "input_audio_buffer.speech_stopped"}, SpeechStopped(None)),
    ({"type": "response.created"}, ResponseCreated(None)),
    ({"type": "response.created", "response": "resp_1"}, ResponseCreated(None)),
    ({"type": "response.created", "response": {"id": 1}}, ResponseCreated(None)),
    ({"type": "response.done"}, ResponseDone(None, "unknown", None, None)),
    ({"type": "response.done", "response": None}, ResponseDone(None, "unknown", None, None)),
    ({"type": "response.done", "response": ["resp_1"]}, ResponseDone(None, "unknown", None, None)),
    ({"type": "response.done", "response": {"id": "resp_1", "status": "", "status_details": "failed",
                                            "usage": "lots"}}, ResponseDone("resp_1", "unknown", None, None)),
    ({"type": "response.output_audio.done"}, AudioDone(None)),
    ({"type": "response.audio.done", "item_id": {"id": "x"}}, AudioDone(None)),
    ({"type": "conversation.item.input_audio_transcription.failed"}, TranscriptFailed(None, None)),
    ({"type": "conversation.item.input_audio_transcription.failed", "item_id": "item_U1", "error": "boom"},
     TranscriptFailed("item_U1", "boom")),
    ({"type": "conversation.item.truncated"}, ItemTruncated(None, None)),
    ({"type": "response.output_item.added"}, ItemAdded(None, None)),
    ({"type": "response.output_item.added", "item": ["item_A1"]}, ItemAdded(None, None)),
    ({"type": "response.output_item.added", "item": {"id": "item_A1", "role": 1}}, ItemAdded("item_A1", None)),
    ({"type": "session.created"}, SessionCreated(None)),
    ({"type": "session.updated", "session": None}, SessionUpdated(None)),
    ({"type": "session.updated", "session": {"id": 42}}, SessionUpdated(None)),
    ({"type": "error"}, UpstreamError(WARNING, "unknown")),
    ({"type": "error", "error": "Internal error"}, UpstreamError(WARNING, "unknown")),
    ({"type": "error", "error": ["server_error"]}, UpstreamError(WARNING, "unknown")),
], ids=lambda v: orjson.dumps(v).decode()[:70] if isinstance(v, dict) else None)
def test_missing_and_ill_typed_fields_degrade(any_face, event, expected):
    assert any_face.decode(orjson.dumps(event)) == expected


@pytest.mark.parametrize("event_type", ["rate_limits.updated", "conversation.item.added", "conversation.item.done",
                                        "conversation.item.created", "response.output_text.delta",
                                        "response.content_part.added", "input_audio_buffer.committed",
                                        "output_audio_buffer.cleared", "", "RESPONSE.DONE"])
def test_unknown_event_type_is_ignored(any_face, frame, event_type):
    assert any_face.decode(frame({"type": event_type, "event_id": "event_1"})) == UpstreamIgnored(event_type)


@pytest.mark.parametrize("event", [{}, {"event_id": "event_1", "delta": AUDIO}, {"type": None}, {"type": 5},
                                   {"type": True}, {"type": ["response.done"]}, {"type": {"name": "error"}}],
                         ids=repr)
def test_event_without_a_string_type_is_ignored(any_face, frame, event):
    assert any_face.decode(frame(event)) == UpstreamIgnored(None)


# --- encode ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [AUDIO, PADDED, "", "a\"b\\c\nd\u00e9\x01\u2028</x>"], ids=repr)
def test_append_audio_is_exactly_the_passthrough_event(any_face, payload):
    frame = any_face.encode(AppendAudio(payload))
    assert type(frame) is bytes
    assert frame == orjson.dumps({"type": "input_audio_buffer.append", "audio": payload})
    assert frame == shapes.append(payload)
    assert orjson.loads(frame) == {"type": "input_audio_buffer.append", "audio": payload}


@pytest.mark.parametrize("payload", [AUDIO, PADDED])
def test_append_audio_base64_appears_verbatim(payload):
    # '/' and '+' need no JSON escaping: the carrier's base64 is in the frame byte for byte.
    assert face().encode(AppendAudio(payload)) == b'{"type":"input_audio_buffer.append","audio":"' + \
        payload.encode() + b'"}'


def test_truncate_item(any_face):
    frame = any_face.encode(TruncateItem("item_A1", 0, 740))
    assert type(frame) is bytes
    assert orjson.loads(frame) == {"type": "conversation.item.truncate", "item_id": "item_A1", "content_index": 0,
                                   "audio_end_ms": 740}


@pytest.mark.parametrize(("response_id", "expected"), [
    ("resp_1", {"type": "response.cancel", "response_id": "resp_1"}),
    (None, {"type": "response.cancel"}),
    ("", {"type": "response.cancel"}),
])
def test_cancel_response(any_face, response_id, expected):
    frame = any_face.encode(CancelResponse(response_id))
    assert type(frame) is bytes
    assert orjson.loads(frame) == expected


def test_greet_is_a_response_create_with_instructions(any_face):
    text = 'Hello, thanks for calling "Chez Nous". How can I help?'
    event = orjson.loads(any_face.encode(Greet(text)))
    assert event["type"] == "response.create"
    assert set(event["response"]) == {"instructions", "metadata"}
    assert event["response"]["instructions"].endswith(text)
    assert event["response"]["metadata"] == {"purpose": "greeting"}


@pytest.mark.parametrize(("dialect", "codec", "expected"), [
    ("ga", PCMU, {"type": "audio/pcmu"}),
    ("ga", PCMA, {"type": "audio/pcma"}),
    ("ga", l16(24000), {"type": "audio/pcm", "rate": 24000}),
    ("beta", PCMU, "g711_ulaw"),
    ("beta", PCMA, "g711_alaw"),
    ("beta", l16(24000), "pcm16"),
])
def test_configure_session_names_the_codec(dialect, codec, expected):
    agent = Agent(instructions="Be brief.", voice="marin", transcription_model="gpt-4o-transcribe",
                  noise_reduction="far_field")
    f = face(dialect, codec, agent)
    assert f.audio_format == expected
    frame = f.encode(ConfigureSession())
    assert type(frame) is bytes
    assert frame == shapes.session_update(dialect, agent, codec)
    event = orjson.loads(frame)
    assert event["type"] == "session.update"
    session = event["session"]
    assert set(session) <= SESSION_FIELDS[dialect]
    if dialect == "ga":
        assert session["type"] == "realtime"
        assert set(session["audio"]["input"]) <= GA_AUDIO_INPUT
        assert set(session["audio"]["output"]) <= GA_AUDIO_OUTPUT
        assert session["audio"]["input"]["format"] == session["audio"]["output"]["format"] == expected
        assert session["audio"]["output"]["voice"] == "marin"
    else:
        assert session["input_audio_format"] == session["output_audio_format"] == expected
        assert session["voice"] == "marin"
    assert session["instructions"] == "Be brief."


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("codec", [l16(8000), l16(16000), l16(48000), Codec("pcmu", 16000, 16.0),
                                   Codec("pcma", 16000, 16.0), Codec("opus", 48000, 6.0)],
                         ids=lambda c: f"{c.name}@{c.sample_rate}")
def test_face_refuses_a_codec_the_session_cannot_take(dialect, codec):
    with pytest.raises(ValueError, match=f"does not take {codec.name} at {codec.sample_rate} Hz"):
        face(dialect, codec)


TURNS = (("user", "Hi, is this the restaurant?"), ("assistant", "Yes! How can I help?"),
         ("user", "A table for two, at 8 / \"tonight\"."), ("assistant", "Booked — see you at 8."))


@pytest.mark.parametrize(("dialect", "assistant_part"), [("ga", "output_text"), ("beta", "text")])
def test_restore_conversation_is_items_in_order(dialect, assistant_part):
    frames = face(dialect).encode(RestoreConversation(TURNS))
    assert type(frames) is tuple
    assert len(frames) == len(TURNS)
    for frame, (role, text) in zip(frames, TURNS, strict=True):
        assert type(frame) is bytes
        part = "input_text" if role == "user" else assistant_part
        assert orjson.loads(frame) == {"type": "conversation.item.create", "item": {
            "type": "message", "role": role, "content": [{"type": part, "text": text}]}}


def test_restore_of_nothing_is_no_frame(any_face):
    assert any_face.encode(RestoreConversation(())) == ()


TOOL_TURNS = (("user", "Where is order 4711?"), ("function_call", "call_1", "order_status", '{"order_id":"4711"}'),
              ("function_call_output", "call_1", '{"status":"shipped"}'), ("assistant", "It has shipped."))


def every_client_frame(f):
    actions = [AppendAudio(AUDIO), TruncateItem("item_A1", 0, 740), CancelResponse("resp_1"), CancelResponse(None),
               Greet("Hello!"), ConfigureSession(), RestoreConversation(TURNS), RestoreConversation(TOOL_TURNS),
               SendToolOutput("call_1", '{"status":"shipped"}'), RequestResponse(), Say("Connecting you now."),
               Inform("The transfer did not go through."), SendUserText("The caller pressed 4 on the keypad."),
               CommitInput(), RequestResponse("Check whether the caller is still there.", "idle_reprompt")]
    for action in actions:
        encoded = f.encode(action)
        yield from (encoded,) if type(encoded) is bytes else encoded


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("turn_detection", ["server_vad", "semantic_vad", "none"])
def test_every_client_event_is_within_the_reference_field_lists(dialect, turn_detection):
    agent = Agent(turn_detection=TurnDetection(mode=turn_detection), transcription_model="whisper-1",
                  transcription_language="en", noise_reduction="near_field")
    seen = set()
    for frame in every_client_frame(face(dialect, agent=agent)):
        event = orjson.loads(frame)
        assert type(event) is dict
        kind = event["type"]
        seen.add(kind)
        assert kind in CLIENT_EVENT_FIELDS
        assert set(event) <= CLIENT_EVENT_FIELDS[kind]
        assert CLIENT_EVENT_REQUIRED[kind] <= set(event)
        if kind == "conversation.item.create":
            item = event["item"]
            assert set(item) <= ITEM_FIELDS
            if item["type"] == "function_call":
                assert {type(item[k]) for k in ("call_id", "name", "arguments")} == {str}
                assert "role" not in item and "content" not in item
            elif item["type"] == "function_call_output":
                assert set(item) == {"type", "call_id", "output"} and type(item["output"]) is str
            else:
                assert item["type"] == "message"
                for part in item["content"]:
                    assert part["type"] in CONTENT_TYPES[dialect][item["role"]]
        elif kind == "response.create":
            assert set(event.get("response", {})) <= RESPONSE_FIELDS[dialect]
        elif kind == "session.update":
            assert set(event["session"]) <= SESSION_FIELDS[dialect]
        elif kind == "conversation.item.truncate":
            assert all(type(event[k]) is int for k in ("content_index", "audio_end_ms"))
    assert seen == {"input_audio_buffer.append", "conversation.item.truncate", "response.cancel", "response.create",
                    "session.update", "conversation.item.create", "input_audio_buffer.commit"}


# --- parse_usage ----------------------------------------------------------------------------------

@pytest.mark.parametrize("usage", [None, "", 42, "usage", [GA_USAGE], True])
def test_usage_absent_is_none(usage):
    assert parse_usage(usage) is None


def test_full_ga_usage_by_kind():
    parsed = parse_usage(GA_USAGE)
    assert parsed == GA_USAGE_BY_KIND
    assert set(parsed) <= set(TOKEN_KINDS)


@pytest.mark.parametrize(("usage", "expected"), [
    ({}, {}),
    ({"total_tokens": 10, "input_tokens": 6, "output_tokens": 4}, {}),
    ({"input_token_details": {"audio_tokens": 50}}, {"input_audio": 50}),
    ({"output_token_details": {"audio_tokens": 120, "text_tokens": 30}}, {"output_audio": 120, "output_text": 30}),
    ({"input_token_details": {"text_tokens": 119, "audio_tokens": 8}}, {"input_text": 119, "input_audio": 8}),
    ({"input_token_details": None, "output_token_details": {"text_tokens": 3}}, {"output_text": 3}),
    ({"input_token_details": [1, 2], "output_token_details": "many"}, {}),
    # cached_tokens_details is a breakdown of cached_tokens: only its audio part is kept (priced apart)
    ({"input_token_details": {"cached_tokens_details": {"text_tokens": 128, "audio_tokens": 256}}},
     {"input_cached_audio": 256}),
])
def test_partial_usage(usage, expected):
    assert parse_usage(usage) == expected


def test_zero_negative_and_non_int_counts_are_dropped():
    usage = {"input_token_details": {"text_tokens": 0, "audio_tokens": -3, "cached_tokens": "12"},
             "output_token_details": {"text_tokens": 1.5, "audio_tokens": True}}
    assert parse_usage(usage) == {}
    usage = {"input_token_details": {"text_tokens": 7, "audio_tokens": None, "cached_tokens": 10.0},
             "output_token_details": {"text_tokens": [5], "audio_tokens": 1}}
    assert parse_usage(usage) == {"input_text": 7, "output_audio": 1}
