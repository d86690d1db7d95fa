"""The session.update of each dialect against the field lists of protocol-reference.md (§1.2, §2.2)."""

import orjson

from gateway.config import load_settings
from gateway.realtime import dialect

GA_SESSION_FIELDS = {"type", "model", "instructions", "output_modalities", "audio", "tools", "tool_choice",
                     "max_output_tokens", "truncation", "tracing", "include", "prompt", "reasoning",
                     "parallel_tool_calls"}
GA_AUDIO_INPUT = {"format", "noise_reduction", "transcription", "turn_detection"}
GA_AUDIO_OUTPUT = {"format", "voice", "speed"}
BETA_SESSION_FIELDS = {"modalities", "instructions", "voice", "input_audio_format", "output_audio_format",
                       "input_audio_transcription", "turn_detection", "input_audio_noise_reduction", "tools",
                       "tool_choice", "temperature", "max_response_output_tokens", "speed", "tracing", "model"}
SERVER_VAD = {"type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response",
              "interrupt_response", "idle_timeout_ms"}


def agent(**env):
    return load_settings({"TURN_DETECTION": "server_vad", **env}).agent


def test_ga_update_has_only_ga_fields_and_pcmu():
    event = orjson.loads(dialect.session_update("ga", agent(INPUT_TRANSCRIPTION_MODEL="whisper-1",
                                                            NOISE_REDUCTION="near_field")))
    assert event["type"] == "session.update"
    session = event["session"]
    assert session["type"] == "realtime"
    assert set(session) <= GA_SESSION_FIELDS
    assert set(session["audio"]) == {"input", "output"}
    assert set(session["audio"]["input"]) <= GA_AUDIO_INPUT
    assert set(session["audio"]["output"]) <= GA_AUDIO_OUTPUT
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    assert set(session["audio"]["input"]["turn_detection"]) <= SERVER_VAD
    assert session["audio"]["input"]["transcription"] == {"model": "whisper-1"}
    assert session["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    assert session["output_modalities"] == ["audio"]


def test_beta_update_has_only_beta_fields_and_g711():
    session = orjson.loads(dialect.session_update("beta", agent()))["session"]
    assert set(session) <= BETA_SESSION_FIELDS
    assert session["input_audio_format"] == session["output_audio_format"] == "g711_ulaw"
    assert session["modalities"] == ["text", "audio"]
    assert set(session["turn_detection"]) <= SERVER_VAD - {"idle_timeout_ms"}


def test_semantic_vad_and_no_turn_detection():
    semantic = orjson.loads(dialect.session_update("ga", agent(TURN_DETECTION="semantic_vad",
                                                               VAD_EAGERNESS="low")))
    td = semantic["session"]["audio"]["input"]["turn_detection"]
    assert td == {"type": "semantic_vad", "eagerness": "low", "create_response": True, "interrupt_response": True}
    off = orjson.loads(dialect.session_update("beta", agent(TURN_DETECTION="none")))
    assert off["session"]["turn_detection"] is None


def test_client_events_pass_audio_through():
    payload = "f39/fw=="
    assert orjson.loads(dialect.append(payload)) == {"type": "input_audio_buffer.append", "audio": payload}
    assert orjson.loads(dialect.truncate("item_1", 0, 740)) == {
        "type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0, "audio_end_ms": 740}
    assert orjson.loads(dialect.cancel("resp_1")) == {"type": "response.cancel", "response_id": "resp_1"}
