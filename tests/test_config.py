"""Configuration: every setting from the environment, clear errors naming the variable."""

import pytest

from gateway.config import ConfigError, Secret, load_settings


def test_defaults_run_offline():
    s = load_settings({})
    assert s.offline and s.upstream.dialect == "ga"
    assert s.port == 8080 and s.agent.turn_detection.mode == "server_vad"
    assert s.stream_token_secret_generated


def test_openai_ga_by_default_with_a_key():
    s = load_settings({"OPENAI_API_KEY": "sk-test-123456"})
    assert s.upstream.provider == "openai" and s.upstream.dialect == "ga"
    assert s.upstream.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    headers = dict(s.upstream.headers)
    assert headers["Authorization"].reveal() == "Bearer sk-test-123456"
    assert "OpenAI-Beta" not in headers
    assert "sk-test" not in repr(s)


def test_openai_refuses_beta():
    with pytest.raises(ConfigError, match="REALTIME_DIALECT"):
        load_settings({"OPENAI_API_KEY": "sk-x-123456", "REALTIME_DIALECT": "beta"})


def test_azure_ga_and_preview():
    ga = load_settings({"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com", "AZURE_OPENAI_API_KEY": "k" * 32,
                        "AZURE_OPENAI_DEPLOYMENT": "my-rt"})
    assert ga.upstream.url == "wss://res.openai.azure.com/openai/v1/realtime?model=my-rt"
    assert ga.upstream.dialect == "ga"
    assert dict(ga.upstream.headers)["api-key"].reveal() == "k" * 32
    preview = load_settings({"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com/",
                             "AZURE_OPENAI_API_KEY": "k" * 32, "AZURE_OPENAI_DEPLOYMENT": "my-rt",
                             "AZURE_OPENAI_API_VERSION": "2025-04-01-preview"})
    assert preview.upstream.url == ("wss://res.openai.azure.com/openai/realtime?"
                                    "api-version=2025-04-01-preview&deployment=my-rt")
    assert preview.upstream.dialect == "beta"
    assert "OpenAI-Beta" not in dict(preview.upstream.headers)
    assert preview.upstream.describe() == "wss://res.openai.azure.com/openai/realtime"


def test_custom_url_with_dialect_and_auth():
    s = load_settings({"REALTIME_URL": "ws://127.0.0.1:9000/v1/realtime", "REALTIME_DIALECT": "beta",
                       "REALTIME_API_KEY": "abcdef123", "REALTIME_AUTH": "api-key"})
    assert s.upstream.provider == "custom" and s.upstream.dialect == "beta"
    headers = dict(s.upstream.headers)
    assert headers["api-key"].reveal() == "abcdef123" and headers["OpenAI-Beta"] == "realtime=v1"


@pytest.mark.parametrize(("env", "message"), [
    ({"PORT": "http"}, "PORT must be an integer from 1 to 65535 (got 'http')"),
    ({"PORT": "70000"}, "PORT must be an integer from 1 to 65535"),
    ({"VAD_THRESHOLD": "2"}, "VAD_THRESHOLD must be a number from 0 to 1"),
    ({"TURN_DETECTION": "push"}, "TURN_DETECTION must be one of server_vad, semantic_vad, none"),
    ({"VAD_INTERRUPT_RESPONSE": "maybe"}, "VAD_INTERRUPT_RESPONSE must be true or false"),
    ({"REALTIME_URL": "https://x"}, "REALTIME_URL must be an absolute wss/ws URL"),
    ({"PUBLIC_URL": "gw.example.com"}, "PUBLIC_URL must be an absolute https/http URL"),
    ({"REALTIME_PROVIDER": "openai"}, "OPENAI_API_KEY is required"),
    ({"REALTIME_PROVIDER": "azure"}, "AZURE_OPENAI_ENDPOINT is required when REALTIME_PROVIDER=azure"),
    ({"REALTIME_PROVIDER": "custom"}, "REALTIME_URL is required when REALTIME_PROVIDER=custom"),
    ({"AZURE_OPENAI_ENDPOINT": "res.openai.azure.com", "AZURE_OPENAI_DEPLOYMENT": "rt"},
     "AZURE_OPENAI_ENDPOINT must be an absolute https/wss/http/ws URL"),
    ({"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com", "AZURE_OPENAI_DEPLOYMENT": "rt",
      "AZURE_OPENAI_AUTH": "key"}, "AZURE_OPENAI_API_KEY is required when AZURE_OPENAI_AUTH=key"),
    ({"AZURE_OPENAI_AUTH": "password"}, "AZURE_OPENAI_AUTH must be one of auto, key, entra"),
    ({"OPENAI_API_KEY": "sk-x-123456", "AGENT_VOICE": "robot"},
     "AGENT_VOICE must be one of alloy, ash, ballad, coral, echo, sage, shimmer, verse, marin, cedar "
     "with REALTIME_PROVIDER=openai (got 'robot')"),
    ({"AGENT_VOICE": "al loy"}, "AGENT_VOICE must be a voice name such as alloy"),
    ({"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com", "AZURE_OPENAI_API_KEY": "k" * 20},
     "AZURE_OPENAI_DEPLOYMENT is required"),
    ({"AGENT_INSTRUCTIONS_FILE": "/nonexistent/prompt.txt"}, "AGENT_INSTRUCTIONS_FILE cannot be read"),
    ({"STREAM_TOKEN_SECRET": "short"}, "STREAM_TOKEN_SECRET must be at least 16"),
    ({"PORT": "9000", "METRICS_PORT": "9000"}, "METRICS_PORT must differ from PORT"),
    ({"MAX_FRAMES_PER_SECOND": "-1"}, "MAX_FRAMES_PER_SECOND must be an integer from 0 to 100000"),
    ({"UPSTREAM_CONNECT_RETRIES": "many"}, "UPSTREAM_CONNECT_RETRIES must be an integer from 0 to 10"),
    ({"UPSTREAM_RETRY_BACKOFF_S": "31"}, "UPSTREAM_RETRY_BACKOFF_S must be a number from 0 to 30"),
    ({"UPSTREAM_MAX_RECONNECTS": "101"}, "UPSTREAM_MAX_RECONNECTS must be an integer from 0 to 100"),
    ({"SESSION_MAX_S": "0.5"}, "SESSION_MAX_S must be 0 (never recycle) or at least 1 second"),
    ({"SEND_STALL_TIMEOUT_S": "0"}, "SEND_STALL_TIMEOUT_S must be a number from 1 to 300"),
    ({"TWILIO_ACCOUNT_SID": "AC123"}, "TWILIO_ACCOUNT_SID must be AC followed by 32 hex digits"),
    ({"TWILIO_API_KEY_SID": "SK" + "0" * 32}, "set both TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET"),
    ({"TWILIO_API_KEY_SID": "SK" + "0" * 32, "TWILIO_API_KEY_SECRET": "s" * 32},
     "TWILIO_API_KEY_SID needs TWILIO_ACCOUNT_SID"),
    ({"TWILIO_API_BASE_URL": "api.twilio.com"}, "TWILIO_API_BASE_URL must be an absolute https/http URL"),
    ({"FALLBACK_NUMBER": "555-0100"}, "FALLBACK_NUMBER must be a phone number in E.164 form"),
])
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert message in str(info.value)


def test_every_error_is_reported_at_once_one_per_line():
    env = {"PORT": "eighty", "REALTIME_PROVIDER": "azure", "OPENAI_API_KEY": "sk-secret-value-1",
           "VAD_THRESHOLD": "2", "TWILIO_ACCOUNT_SID": "AC123", "FALLBACK_NUMBER": "555-0100",
           "AGENT_VOICE": "robot", "STREAM_TOKEN_SECRET": "short"}
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    errors = info.value.errors
    expected = ["PORT must be an integer", "STREAM_TOKEN_SECRET must be at least 16",
                "AZURE_OPENAI_ENDPOINT is required when REALTIME_PROVIDER=azure",
                "AZURE_OPENAI_DEPLOYMENT is required", "AGENT_VOICE must be one of",
                "VAD_THRESHOLD must be a number", "FALLBACK_NUMBER must be a phone number",
                "TWILIO_ACCOUNT_SID must be AC followed by 32 hex digits"]
    assert len(errors) == len(expected)
    for fragment in expected:
        assert sum(fragment in error for error in errors) == 1, fragment
    assert str(info.value).splitlines() == list(errors)  # one per line
    described = info.value.describe()
    assert described.startswith(f"configuration errors ({len(expected)}, fix them all):")
    assert "sk-secret-value-1" not in described and "short" not in described


def test_one_error_reads_as_before():
    with pytest.raises(ConfigError) as info:
        load_settings({"PORT": "eighty"})
    assert info.value.errors == ("PORT must be an integer from 1 to 65535 (got 'eighty')",)
    assert info.value.describe() == "configuration error: PORT must be an integer from 1 to 65535 (got 'eighty')"


def test_checks_on_a_bad_value_are_not_repeated_on_its_default():
    with pytest.raises(ConfigError) as info:  # PORT fell back to 8080: no "must differ" on top
        load_settings({"PORT": "x", "METRICS_PORT": "8080"})
    assert info.value.errors == ("PORT must be an integer from 1 to 65535 (got 'x')",)


@pytest.mark.parametrize(("env", "provider", "choice"), [
    ({}, "echo", "echo: none of REALTIME_URL, AZURE_OPENAI_ENDPOINT, OPENAI_API_KEY is set"),
    ({"OPENAI_API_KEY": "sk-a-123456"}, "openai", "openai: OPENAI_API_KEY is set"),
    ({"OPENAI_API_KEY": "sk-a-123456", "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
      "AZURE_OPENAI_API_KEY": "k" * 32, "AZURE_OPENAI_DEPLOYMENT": "rt"},
     "azure", "azure: AZURE_OPENAI_ENDPOINT is set (OPENAI_API_KEY is set too: set REALTIME_PROVIDER to choose)"),
    ({"OPENAI_API_KEY": "sk-a-123456", "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
      "AZURE_OPENAI_DEPLOYMENT": "rt", "REALTIME_URL": "ws://127.0.0.1:9/v1/realtime"},
     "custom", "custom: REALTIME_URL is set (AZURE_OPENAI_ENDPOINT and OPENAI_API_KEY are set too: set "
     "REALTIME_PROVIDER to choose)"),
    ({"OPENAI_API_KEY": "sk-a-123456", "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
      "REALTIME_PROVIDER": "openai"}, "openai", "openai: REALTIME_PROVIDER=openai"),
])
def test_the_chosen_upstream_and_why(env, provider, choice):
    s = load_settings(env)
    assert (s.upstream.provider, s.upstream_choice) == (provider, choice)
    assert "sk-a" not in s.upstream_choice


def test_agent_voice_is_checked_for_openai_and_azure_and_passed_on_with_a_warning_elsewhere():
    assert load_settings({"OPENAI_API_KEY": "sk-a-123456", "AGENT_VOICE": "Marin"}).agent.voice == "marin"
    assert load_settings({"OPENAI_API_KEY": "sk-a-123456"}).warnings == ()
    with pytest.raises(ConfigError, match="with REALTIME_PROVIDER=azure"):
        load_settings({"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com", "AZURE_OPENAI_API_KEY": "k" * 32,
                       "AZURE_OPENAI_DEPLOYMENT": "rt", "AGENT_VOICE": "robot"})
    custom = load_settings({"REALTIME_URL": "ws://127.0.0.1:9/v1/realtime", "AGENT_VOICE": "my_voice-2"})
    assert custom.agent.voice == "my_voice-2"
    assert len(custom.warnings) == 1 and "AGENT_VOICE 'my_voice-2' is not one of OpenAI's voices" in custom.warnings[0]
    offline = load_settings({"AGENT_VOICE": "robot"})
    assert offline.offline and "the echo upstream must know it" in offline.warnings[0]


def test_azure_without_a_key_uses_entra_id():
    base = {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com", "AZURE_OPENAI_DEPLOYMENT": "my-rt"}
    s = load_settings(base)
    up = s.upstream
    assert (up.provider, up.auth, up.entra_scope) == ("azure", "entra", "https://cognitiveservices.azure.com/.default")
    assert up.url == "wss://res.openai.azure.com/openai/v1/realtime?model=my-rt" and up.headers == ()
    assert s.warnings == ()
    explicit = load_settings({**base, "AZURE_OPENAI_AUTH": "entra", "AZURE_OPENAI_API_KEY": "k" * 32})
    assert explicit.upstream.auth == "entra" and explicit.upstream.headers == ()
    assert explicit.warnings == ("AZURE_OPENAI_API_KEY is set but AZURE_OPENAI_AUTH=entra: the key is not used",)
    keyed = load_settings({**base, "AZURE_OPENAI_API_KEY": "k" * 32})  # auto with a key: the key, as before
    assert (keyed.upstream.auth, keyed.upstream.entra_scope) == ("api-key", None)
    assert dict(keyed.upstream.headers)["api-key"].reveal() == "k" * 32
    preview = load_settings({**base, "AZURE_OPENAI_API_VERSION": "2025-04-01-preview"})
    assert preview.upstream.auth == "entra" and preview.upstream.dialect == "beta"


def test_secret_values_never_print_in_error_messages():
    with pytest.raises(ConfigError) as info:
        load_settings({"REALTIME_URL": "not a url", "REALTIME_API_KEY": "supersecretvalue"})
    assert "supersecretvalue" not in str(info.value)


def test_instructions_from_file_and_agent_settings(tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You are Ada, the front desk.\n")
    s = load_settings({"AGENT_INSTRUCTIONS_FILE": str(prompt), "AGENT_VOICE": "marin", "AGENT_GREETING": "Hi!",
                       "TURN_DETECTION": "semantic_vad", "VAD_EAGERNESS": "high", "NOISE_REDUCTION": "far_field",
                       "INPUT_TRANSCRIPTION_MODEL": "gpt-4o-transcribe"})
    a = s.agent
    assert a.instructions == "You are Ada, the front desk."
    assert (a.voice, a.greeting, a.noise_reduction) == ("marin", "Hi!", "far_field")
    assert a.turn_detection.mode == "semantic_vad" and a.turn_detection.eagerness == "high"
    assert a.transcription_model == "gpt-4o-transcribe"


def test_secret_wrapper():
    s = Secret("hunter2-long")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and f"{s}" == "Secret('***')"
    assert s.reveal() == "hunter2-long"


def _env_example() -> dict[str, str]:
    from pathlib import Path

    out = {}
    for line in (Path(__file__).parent.parent / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name] = value
    return out


def test_env_example_documents_every_setting_with_its_default():
    import re
    from pathlib import Path

    documented = _env_example()
    gateway = Path(__file__).parent.parent / "gateway"
    # config.py, agent_settings.py (the agent's instructions and silence), outbound/settings.py (POST /calls),
    # agents/settings.py, the recordings' settings, the call reports' signing and every carrier's settings module
    source = "".join(p.read_text() for p in [gateway / "config.py", gateway / "agent_settings.py",
                                             gateway / "outbound" / "settings.py", gateway / "agents" / "settings.py",
                                             gateway / "recording" / "settings.py",
                                             gateway / "observability" / "signing.py",
                                             gateway / "observability" / "reports.py",
                                             gateway / "realtime" / "pool_settings.py",
                                             gateway / "sim" / "echo_settings.py",
                                             *sorted(gateway.glob("carriers/*/settings.py"))])
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', source))
    assert read - set(documented) == set(), "settings missing from .env.example"
    assert set(documented) - read == set(), ".env.example lists settings the gateway does not read"
    # The documented defaults are the defaults.
    assert load_settings(documented).agent == load_settings({}).agent
    s, d = load_settings(documented), load_settings({})
    assert (s.port, s.host, s.drain_timeout_s, s.upstream.provider) == (d.port, d.host, d.drain_timeout_s, "echo")


def test_resilience_settings():
    d = load_settings({})
    assert (d.max_frames_per_second, d.max_reconnects, d.session_max_s, d.send_stall_timeout_s) == (150, 3, 3300, 10)
    assert (d.upstream.connect_retries, d.upstream.retry_backoff_s) == (2, 0.5)
    assert d.fallback.message.startswith("Sorry") and d.fallback.number is None
    assert d.carriers["twilio"].api_base_url == "https://api.twilio.com"
    s = load_settings({"REALTIME_URL": "ws://127.0.0.1:9/v1/realtime", "UPSTREAM_CONNECT_RETRIES": "0",
                       "SESSION_MAX_S": "0", "TWILIO_ACCOUNT_SID": "AC" + "ab" * 16, "TWILIO_AUTH_TOKEN": "t" * 32,
                       "TWILIO_API_KEY_SID": "SK" + "cd" * 16, "TWILIO_API_KEY_SECRET": "key-secret-value",
                       "FALLBACK_NUMBER": "+14155550100", "FALLBACK_MESSAGE": "We will call you back.",
                       "TWILIO_API_BASE_URL": "http://127.0.0.1:9999/"})
    assert s.upstream.connect_retries == 0 and s.session_max_s == 0
    assert s.carriers["twilio"].api_base_url == "http://127.0.0.1:9999"
    assert (s.fallback.number, s.fallback.message) == ("+14155550100", "We will call you back.")
    assert "key-secret-value" not in repr(s) and "key-secret-value" in s.secrets()
    assert "t" * 32 in s.secrets()


def test_idle_settings():
    idle = load_settings({}).agent.idle
    assert (idle.reprompt_s, idle.hangup_s, idle.enabled) == (0.0, 0.0, False)
    assert idle.reprompt_instructions.startswith("The caller has been silent")
    idle = load_settings({"IDLE_REPROMPT_S": "8", "IDLE_HANGUP_S": "20", "IDLE_REPROMPT_INSTRUCTIONS": "Hello?",
                          "IDLE_HANGUP_INSTRUCTIONS": "Bye."}).agent.idle
    assert (idle.reprompt_s, idle.hangup_s, idle.reprompt_instructions, idle.goodbye_instructions) == (
        8.0, 20.0, "Hello?", "Bye.")
    assert load_settings({"IDLE_HANGUP_S": "30"}).agent.idle.hangup_s == 30.0  # a hang-up without a check-in


def test_idle_mistakes_are_named_and_reported_together():
    with pytest.raises(ConfigError) as info:
        load_settings({"IDLE_REPROMPT_S": "10", "IDLE_HANGUP_S": "10", "IDLE_HANGUP_INSTRUCTIONS": "x" * 2001})
    errors = info.value.errors
    assert any(e.startswith("IDLE_HANGUP_S must be longer than IDLE_REPROMPT_S") for e in errors)
    assert any(e.startswith("IDLE_HANGUP_INSTRUCTIONS must be at most 2000 characters") for e in errors)
    with pytest.raises(ConfigError, match=r"IDLE_REPROMPT_S must be 0 \(off\) or at least 0\.5 seconds"):
        load_settings({"IDLE_REPROMPT_S": "0.2"})
    with pytest.raises(ConfigError, match="IDLE_HANGUP_S must be a number from 0 to 86400"):
        load_settings({"IDLE_HANGUP_S": "soon"})


def test_idle_with_turn_detection_off_is_a_warning():
    settings = load_settings({"IDLE_HANGUP_S": "30", "TURN_DETECTION": "none"})
    assert any(w.startswith("IDLE_REPROMPT_S / IDLE_HANGUP_S with TURN_DETECTION=none") for w in settings.warnings)
