"""Plivo's settings: PLIVO_AUTH_ID, PLIVO_AUTH_TOKEN (a secret), PLIVO_API_BASE_URL."""

from __future__ import annotations

import pytest

from gateway.carriers.plivo.carrier import PlivoCarrier
from gateway.carriers.plivo.settings import API_BASE_URL, PlivoSettings, load
from gateway.env import ConfigError, Env, Secret

AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"


def test_defaults_sign_nothing():
    settings = load(Env({}))
    assert settings == PlivoSettings(auth_id=None, auth_token=None, api_base_url=API_BASE_URL)
    assert API_BASE_URL == "https://api.plivo.com"
    carrier = PlivoCarrier(settings)
    assert not carrier.signs_webhooks and PlivoCarrier.secrets_of(settings) == []


def test_all_set():
    settings = load(Env({"PLIVO_AUTH_ID": AUTH_ID, "PLIVO_AUTH_TOKEN": "s3cr3t",
                         "PLIVO_API_BASE_URL": "http://127.0.0.1:9/"}))
    assert settings.auth_id == AUTH_ID and settings.auth_token == Secret("s3cr3t")
    assert settings.api_base_url == "http://127.0.0.1:9"  # no trailing slash
    assert "s3cr3t" not in repr(settings)
    assert PlivoCarrier.secrets_of(settings) == [Secret("s3cr3t")] and PlivoCarrier(settings).signs_webhooks
    assert PlivoCarrier.secrets_of(object()) == []


@pytest.mark.parametrize("value", ["MA/../x", "MA XXXXXXXXXXXXXXXX", "short", "MA" + "X" * 60])
def test_a_malformed_auth_id_is_refused(value: str):
    with pytest.raises(ConfigError, match="PLIVO_AUTH_ID"):
        load(Env({"PLIVO_AUTH_ID": value}))


@pytest.mark.parametrize("value", ["ftp://api.plivo.com", "api.plivo.com", "https://"])
def test_a_bad_base_url_is_refused(value: str):
    with pytest.raises(ConfigError, match="PLIVO_API_BASE_URL"):
        load(Env({"PLIVO_API_BASE_URL": value}))
