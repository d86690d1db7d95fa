"""Telnyx's settings: TELNYX_PUBLIC_KEY (an Ed25519 key, base64), TELNYX_API_KEY (a secret), TELNYX_CODEC,
TELNYX_WEBHOOK_MAX_AGE_S, TELNYX_API_BASE_URL."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.carriers.telnyx.carrier import TelnyxCarrier
from gateway.carriers.telnyx.settings import API_BASE_URL, TelnyxSettings, load
from gateway.config import load_settings
from gateway.core.codec import PCMA, PCMU
from gateway.env import ConfigError, Env, Secret


def public_key_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def test_defaults_sign_nothing():
    settings = load(Env({}))
    assert settings == TelnyxSettings(public_key=None, api_key=None, codec=PCMU, webhook_max_age_s=300,
                                      api_base_url=API_BASE_URL)
    assert settings.verify_key is None and API_BASE_URL == "https://api.telnyx.com"
    carrier = TelnyxCarrier(settings)
    assert not carrier.signs_webhooks and TelnyxCarrier.secrets_of(settings) == []


def test_all_set():
    key = Ed25519PrivateKey.generate()
    settings = load(Env({"TELNYX_PUBLIC_KEY": public_key_b64(key), "TELNYX_API_KEY": "KEY0123_s3cr3t",
                         "TELNYX_CODEC": "PCMA", "TELNYX_WEBHOOK_MAX_AGE_S": "60",
                         "TELNYX_API_BASE_URL": "http://127.0.0.1:9/"}))
    assert settings.public_key == public_key_b64(key) and settings.verify_key is not None
    assert settings.api_key == Secret("KEY0123_s3cr3t") and "s3cr3t" not in repr(settings)
    assert settings.codec == PCMA and settings.webhook_max_age_s == 60
    assert settings.api_base_url == "http://127.0.0.1:9"  # no trailing slash
    carrier = TelnyxCarrier(settings)
    assert carrier.signs_webhooks and TelnyxCarrier.secrets_of(settings) == [Secret("KEY0123_s3cr3t")]
    assert TelnyxCarrier.secrets_of(object()) == []
    assert load(Env({"TELNYX_CODEC": "pcmu"})).codec == PCMU


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"x" * 31).decode(),
                                   base64.b64encode(b"x" * 44).decode(),
                                   "-----BEGIN PUBLIC KEY-----"])
def test_a_public_key_that_is_not_one_is_refused(value: str):
    with pytest.raises(ConfigError, match="TELNYX_PUBLIC_KEY"):
        load(Env({"TELNYX_PUBLIC_KEY": value}))


@pytest.mark.parametrize(("name", "value"), [
    ("TELNYX_CODEC", "G722"), ("TELNYX_CODEC", "opus"), ("TELNYX_WEBHOOK_MAX_AGE_S", "0"),
    ("TELNYX_WEBHOOK_MAX_AGE_S", "soon"), ("TELNYX_API_BASE_URL", "ftp://api.telnyx.com"),
    ("TELNYX_API_BASE_URL", "api.telnyx.com"), ("TELNYX_API_KEY", "KEY one"), ("TELNYX_API_KEY", "KEY\x00"),
])
def test_bad_values_are_refused_naming_the_variable(name: str, value: str):
    with pytest.raises(ConfigError, match=name) as info:
        load(Env({name: value}))
    if name == "TELNYX_API_KEY":  # the error never repeats the key
        assert value not in str(info.value)


def test_the_gateway_settings_carry_telnyx_and_redact_its_key():
    settings = load_settings({"TELNYX_API_KEY": "KEYsecret123", "TELNYX_CODEC": "PCMA"})
    assert settings.carriers["telnyx"].codec == PCMA
    assert "KEYsecret123" in settings.secrets()
    with pytest.raises(ConfigError, match="TELNYX_CODEC"):
        load_settings({"TELNYX_CODEC": "L16"})
