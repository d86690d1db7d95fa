"""SignalWire's settings: each variable validated, each error naming it; secrets kept secret."""

import pytest

from gateway.carriers.signalwire.settings import SignalWireSettings, load
from gateway.config import load_settings
from gateway.env import ConfigError, Env, Secret

PROJECT = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"


def test_nothing_set_is_valid_and_unsigned():
    assert load(Env({})) == SignalWireSettings()
    assert SignalWireSettings().rest_base_url is None
    assert load_settings({}).carriers["signalwire"] == SignalWireSettings()


def test_everything_set():
    s = load(Env({"SIGNALWIRE_SIGNING_KEY": "PSK_signing", "SIGNALWIRE_SPACE_URL": "Example.signalwire.com",
                  "SIGNALWIRE_PROJECT_ID": PROJECT, "SIGNALWIRE_API_TOKEN": "PT-token"}))
    assert s == SignalWireSettings(signing_key=Secret("PSK_signing"), space_url="example.signalwire.com",
                                   project_id=PROJECT, api_token=Secret("PT-token"))
    assert s.rest_base_url == "https://example.signalwire.com"
    assert s.secrets() == [Secret("PSK_signing"), Secret("PT-token")]
    assert "PSK_signing" not in repr(s) and "PT-token" not in repr(s)


@pytest.mark.parametrize("given", ["example.signalwire.com", "https://example.signalwire.com",
                                   "https://example.signalwire.com/", " my-space-2.signalwire.com "])
def test_space_url_forms(given):
    assert load(Env({"SIGNALWIRE_SPACE_URL": given})).space_url in ("example.signalwire.com",
                                                                     "my-space-2.signalwire.com")


def test_the_base_url_override_replaces_the_space():
    s = load(Env({"SIGNALWIRE_PROJECT_ID": PROJECT, "SIGNALWIRE_API_TOKEN": "t",
                  "SIGNALWIRE_API_BASE_URL": "http://127.0.0.1:9999/"}))
    assert s.rest_base_url == "http://127.0.0.1:9999" and s.space_url is None


@pytest.mark.parametrize(("env", "message"), [
    ({"SIGNALWIRE_SPACE_URL": "example.com"}, "SIGNALWIRE_SPACE_URL must be your Space's host"),
    ({"SIGNALWIRE_SPACE_URL": "http://example.signalwire.com"}, "SIGNALWIRE_SPACE_URL must be your Space's host"),
    ({"SIGNALWIRE_SPACE_URL": "example.signalwire.com/api"}, "SIGNALWIRE_SPACE_URL must be your Space's host"),
    ({"SIGNALWIRE_PROJECT_ID": "AC" + "0" * 32, "SIGNALWIRE_API_TOKEN": "t"}, "SIGNALWIRE_PROJECT_ID must be a UUID"),
    ({"SIGNALWIRE_PROJECT_ID": PROJECT}, "set both SIGNALWIRE_PROJECT_ID and SIGNALWIRE_API_TOKEN"),
    ({"SIGNALWIRE_API_TOKEN": "t"}, "set both SIGNALWIRE_PROJECT_ID and SIGNALWIRE_API_TOKEN"),
    ({"SIGNALWIRE_PROJECT_ID": PROJECT, "SIGNALWIRE_API_TOKEN": "t"},
     "SIGNALWIRE_API_TOKEN needs SIGNALWIRE_SPACE_URL"),
    ({"SIGNALWIRE_API_BASE_URL": "example.signalwire.com"},
     "SIGNALWIRE_API_BASE_URL must be an absolute https/http URL"),
])
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load(Env(env))
    with pytest.raises(ConfigError) as info:  # and through the gateway's own loader, with the rest
        load_settings(env)
    assert message in str(info.value)


def test_secrets_are_redacted_through_the_gateway_settings():
    s = load_settings({"SIGNALWIRE_SIGNING_KEY": "PSK_signing_key_value", "SIGNALWIRE_SPACE_URL": "x.signalwire.com",
                       "SIGNALWIRE_PROJECT_ID": PROJECT, "SIGNALWIRE_API_TOKEN": "PT_api_token_value"})
    assert "PSK_signing_key_value" in s.secrets() and "PT_api_token_value" in s.secrets()  # what the logs redact
    assert "PSK_signing_key_value" not in repr(s) and "PT_api_token_value" not in repr(s)
