"""The session.update of each dialect against the field lists of protocol-reference.md (§1.2, §2.2)."""

import orjson
import pytest

from gateway.config import load_settings
from gateway.core.codec import PCMA, PCMU, Codec, l16
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


# --- codecs (protocol-reference.md §1.2 formats, §2.2 / §2.3 GA names) --------------------------------

CODEC_FORMATS = [
    ("ga", PCMU, {"type": "audio/pcmu"}),
    ("ga", PCMA, {"type": "audio/pcma"}),
    ("ga", l16(24000), {"type": "audio/pcm", "rate": 24000}),
    ("beta", PCMU, "g711_ulaw"),
    ("beta", PCMA, "g711_alaw"),
    ("beta", l16(24000), "pcm16"),
]
REFUSED_CODECS = [l16(8000), l16(16000), l16(44100), Codec("pcmu", 16000, 16.0), Codec("pcma", 24000, 24.0),
                  Codec("opus", 48000, 6.0), Codec("g722", 16000, 8.0)]


@pytest.mark.parametrize(("name", "codec", "expected"), CODEC_FORMATS)
def test_audio_format_by_codec(name, codec, expected):
    assert dialect.audio_format(name, codec) == expected


@pytest.mark.parametrize(("name", "codec", "expected"), CODEC_FORMATS)
def test_session_update_carries_the_codec_both_ways(name, codec, expected):
    session = orjson.loads(dialect.session_update(name, agent(), codec))["session"]
    if name == "ga":
        assert set(session) <= GA_SESSION_FIELDS
        assert session["audio"]["input"]["format"] == session["audio"]["output"]["format"] == expected
        assert set(session["audio"]["input"]) <= GA_AUDIO_INPUT
        assert set(session["audio"]["output"]) <= GA_AUDIO_OUTPUT
    else:
        assert set(session) <= BETA_SESSION_FIELDS
        assert session["input_audio_format"] == session["output_audio_format"] == expected


def test_g711_formats_carry_no_rate():
    # audio/pcmu and audio/pcma are implicitly 8 kHz; only audio/pcm takes a rate, and only 24000 (§2.2).
    assert set(dialect.audio_format("ga", PCMU)) == set(dialect.audio_format("ga", PCMA)) == {"type"}


def test_default_codec_is_pcmu():
    assert dialect.session_update("ga", agent()) == dialect.session_update("ga", agent(), PCMU)
    assert dialect.session_update("beta", agent()) == dialect.session_update("beta", agent(), PCMU)


@pytest.mark.parametrize("name", ["ga", "beta"])
@pytest.mark.parametrize("codec", REFUSED_CODECS, ids=lambda c: f"{c.name}@{c.sample_rate}")
def test_a_codec_the_api_cannot_take_is_refused(name, codec):
    message = f"the Realtime API does not take {codec.name} at {codec.sample_rate} Hz"
    with pytest.raises(ValueError, match=message):
        dialect.audio_format(name, codec)
    with pytest.raises(ValueError, match=message):
        dialect.session_update(name, agent(), codec)


def test_a_stored_prompt_goes_in_the_ga_session_and_replaces_empty_instructions():
    from gateway.agent_settings import Agent, StoredPrompt

    prompted = Agent(instructions="", prompt=StoredPrompt("pmpt_1", "3", {"company": "Acme"}))
    session = orjson.loads(dialect.session_update("ga", prompted))["session"]
    assert session["prompt"] == {"id": "pmpt_1", "version": "3", "variables": {"company": "Acme"}}
    assert "instructions" not in session  # the stored prompt's own apply
    both = Agent(instructions="Be brief.", prompt=StoredPrompt("pmpt_1"))
    session = orjson.loads(dialect.session_update("ga", both))["session"]
    assert session["prompt"] == {"id": "pmpt_1"} and session["instructions"] == "Be brief."
    assert "prompt" not in orjson.loads(dialect.session_update("ga", Agent()))["session"]
