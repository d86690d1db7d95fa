"""The agents file: read on top of the environment's agent, every mistake reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.agent_settings import Agent, StoredPrompt, TurnDetection
from gateway.agents.loader import load_agents_file
from gateway.agents.profile import Voicemail
from gateway.config import ConfigError, load_settings

BASE = Agent(instructions="Base instructions.", voice="alloy", greeting="Base hello",
             turn_detection=TurnDetection(mode="server_vad", silence_duration_ms=400))


def write(tmp_path: Path, text: str, name: str = "agents.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def load(tmp_path: Path, text: str, **kwargs) -> object:
    return load_agents_file(write(tmp_path, text), BASE, **kwargs)


def errors_of(tmp_path: Path, text: str, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text, **kwargs)
    return str(exc.value).splitlines()


def test_no_file_is_no_book():
    assert load_agents_file(None, BASE) is None
    assert load_agents_file("", BASE) is None


def test_a_profile_overrides_what_it_names_and_keeps_the_rest(tmp_path: Path):
    (tmp_path / "sales.txt").write_text("Sell to {{from}}.\n")
    book = load(tmp_path, """
default: support
agents:
  sales:
    instructions_file: sales.txt
    voice: Marin
    greeting: "Hi {{name}}"
    model: gpt-realtime-mini
    from_number: "+14155550100"
    turn_detection: {mode: semantic_vad, eagerness: low}
    transcription: {model: gpt-4o-mini-transcribe, language: de}
    noise_reduction: far_field
    idle: {reprompt_s: 5, hangup_s: 9, hangup_instructions: Bye now.}
    voicemail: {mode: say, message: Call us back.}
    max_call_duration_s: 600
  support: {}
routes:
  "+14155550100": sales
  "+1800*": support
""")
    sales, support = book.profiles["sales"], book.profiles["support"]
    assert book.default == "support" and book.route("+14155550100") is sales and book.route("+1999") is support
    a = sales.agent
    assert (a.instructions, a.voice, a.greeting, a.name) == ("Sell to {{from}}.", "marin", "Hi {{name}}", "sales")
    assert a.turn_detection == TurnDetection(mode="semantic_vad", eagerness="low", silence_duration_ms=400)
    assert (a.transcription_model, a.transcription_language, a.noise_reduction) == (
        "gpt-4o-mini-transcribe", "de", "far_field")
    assert (a.idle.reprompt_s, a.idle.hangup_s, a.idle.goodbye_instructions) == (5, 9, "Bye now.")
    assert (sales.model, sales.from_number, sales.max_call_duration_s) == ("gpt-realtime-mini", "+14155550100", 600)
    assert sales.voicemail == Voicemail("say", "Call us back.")
    # The empty profile is the environment's agent under its own name.
    s = support.agent
    assert (s.instructions, s.voice, s.greeting, s.turn_detection, s.name) == (
        BASE.instructions, BASE.voice, BASE.greeting, BASE.turn_detection, "support")
    assert support.model is None and support.voicemail == Voicemail()


def test_one_agent_is_the_default_and_json_is_read_too(tmp_path: Path):
    path = write(tmp_path, '{"agents": {"only": {"voice": "sage"}}}', "agents.json")
    book = load_agents_file(path, BASE)
    assert book.default == "only" and book.route("+1555").agent.voice == "sage"


def test_a_stored_prompt_replaces_the_environment_instructions(tmp_path: Path):
    book = load(tmp_path, """
agents:
  p: {prompt: {id: pmpt_abc123, version: 4, variables: {company: Acme, year: 2026}}}
  q: {prompt: {id: pmpt_abc123}, instructions: Also be brief.}
default: p
""", dialect="ga")
    p, q = book.profiles["p"].agent, book.profiles["q"].agent
    assert p.prompt == StoredPrompt("pmpt_abc123", "4", {"company": "Acme", "year": "2026"})
    assert p.instructions == ""
    assert q.instructions == "Also be brief." and q.prompt == StoredPrompt("pmpt_abc123")


def test_a_tools_file_is_read_relative_to_the_agents_file(tmp_path: Path):
    (tmp_path / "tools.yaml").write_text("end_call: true\n")
    book = load(tmp_path, "agents:\n  a: {tools_file: tools.yaml}\n")
    assert book.profiles["a"].agent.tools.names() == ("end_call",)


def test_every_mistake_is_reported_at_once_naming_the_agent_and_field(tmp_path: Path):
    errors = errors_of(tmp_path, """
agents:
  sales:
    voice: "not a voice!"
    colour: blue
    turn_detection: {mode: shouting, threshold: 2}
    from_number: "0800 123"
    idle: {reprompt_s: 9, hangup_s: 5}
    voicemail: {mode: speak}
    tools_file: missing.yaml
    prompt: {id: nope}
    instructions: hi
    instructions_file: also.txt
  "bad name!": {}
  support: []
routes:
  "+14155550100": nobody
  +14155550101: sales
  "12345": sales
""", provider="openai")
    where = [e.split(": ", 2)[1] for e in errors]
    assert all(e.startswith("AGENTS_FILE ") for e in errors)
    for expected in ("agents.sales.voice", "agents.sales", "agents.sales.turn_detection.mode",
                     "agents.sales.turn_detection.threshold", "agents.sales.from_number", "agents.sales.idle.hangup_s",
                     "agents.sales.voicemail.message", "agents.sales.tools_file", "agents.sales.prompt.id",
                     "agents.bad name!", "agents.support", "routes.+14155550100", "routes.12345"):
        assert expected in where, (expected, errors)
    assert any("unknown field colour" in e for e in errors)
    assert any("set instructions or instructions_file, not both" in e for e in errors)
    assert any("routes.14155550101" in e and "quoted" in e for e in errors)


def test_openai_voices_only_for_openai_and_a_custom_voice_for_a_custom_server(tmp_path: Path):
    text = "agents:\n  a: {voice: robot-7}\n"
    assert any("agents.a.voice" in e for e in errors_of(tmp_path, text, provider="azure"))
    assert load(tmp_path, text, provider="custom").profiles["a"].agent.voice == "robot-7"


def test_a_stored_prompt_needs_ga(tmp_path: Path):
    errors = errors_of(tmp_path, "agents:\n  a: {prompt: {id: pmpt_1}}\n", dialect="beta")
    assert any("agents.a.prompt" in e and "GA dialect" in e for e in errors)


@pytest.mark.parametrize(("text", "message"), [
    ("agents: {}\n", "at least one agent"),
    ("agents:\n  a: {}\n  b: {}\n", "default: is required"),
    ("default: c\nagents:\n  a: {}\n", "must name one of the agents"),
    ("just a string", "must be a mapping"),
    ("agents: [1, 2]\n", "agents: must be a mapping"),
])
def test_the_file_shape(tmp_path: Path, text: str, message: str):
    assert any(message in e for e in errors_of(tmp_path, text)), errors_of(tmp_path, text)


def test_unreadable_or_unparsable_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_agents_file(str(tmp_path / "nope.yaml"), BASE)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(tmp_path, "agents: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_agents_file(write(tmp_path, "{nope", "a.json"), BASE)


def test_load_settings_reads_agents_and_prices_with_the_other_settings(tmp_path: Path):
    agents = write(tmp_path, "agents:\n  a: {model: gpt-realtime-mini}\n  b: {model: my-deployment}\ndefault: a\n")
    prices = write(tmp_path, "gpt-realtime-mini: {audio_input: 10, audio_output: 20}\n", "prices.yaml")
    settings = load_settings({"AGENTS_FILE": agents, "PRICES_FILE": prices})
    assert settings.agents is not None and settings.agents.names() == ["a", "b"]
    assert settings.prices.cost("gpt-realtime-mini", {"input_audio": 1_000_000}) == 10.0
    # A model without a price is worth a word (the environment's model too: gpt-realtime).
    assert any("my-deployment" in w and "gpt-realtime" in w for w in settings.warnings), settings.warnings


def test_a_bad_agents_file_is_reported_with_the_other_settings(tmp_path: Path):
    agents = write(tmp_path, "agents:\n  a: {voice: 7}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings({"AGENTS_FILE": agents, "PORT": "nope"})
    message = str(exc.value)
    assert "agents.a.voice" in message and "PORT" in message


def test_the_example_file_loads(tmp_path: Path):
    settings = load_settings({"AGENTS_FILE": "deploy/agents.example.yaml", "PRICES_FILE": "deploy/prices.example.yaml"})
    assert settings.agents is not None
    assert settings.agents.route("+14155550100").name == "sales"
    assert settings.agents.route("+14155550123").name == "support"
    assert settings.agents.route("+442071234567").name == "support"
    assert settings.warnings == ()
