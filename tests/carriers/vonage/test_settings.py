"""Vonage's settings: VONAGE_SIGNATURE_SECRET, VONAGE_APPLICATION_ID with VONAGE_PRIVATE_KEY or
VONAGE_PRIVATE_KEY_FILE (secrets), VONAGE_SAMPLE_RATE, VONAGE_API_BASE_URL; every error names the variable
and never shows a secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.carriers.vonage.carrier import VonageCarrier
from gateway.carriers.vonage.settings import API_BASE_URL, VonageSettings, load
from gateway.env import ConfigError, Env, Secret

APP = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"


def test_defaults_sign_nothing_and_control_nothing():
    settings = load(Env({}))
    assert settings == VonageSettings(signature_secret=None, application_id=None, private_key=None,
                                      sample_rate=16000, api_base_url=API_BASE_URL)
    assert API_BASE_URL == "https://api.nexmo.com" and not settings.controls_calls
    carrier = VonageCarrier(settings)
    assert not carrier.signs_webhooks and VonageCarrier.secrets_of(settings) == []
    assert carrier.stream_face().rate == 16000


def test_all_set(private_pem: str):
    settings = load(Env({"VONAGE_SIGNATURE_SECRET": "sig-s3cr3t", "VONAGE_APPLICATION_ID": APP,
                         "VONAGE_PRIVATE_KEY": private_pem, "VONAGE_SAMPLE_RATE": "8000",
                         "VONAGE_API_BASE_URL": "http://127.0.0.1:9/"}))
    assert settings.signature_secret == Secret("sig-s3cr3t") and settings.application_id == APP
    assert settings.private_key == Secret(private_pem.strip()) and settings.controls_calls
    assert settings.sample_rate == 8000 and settings.api_base_url == "http://127.0.0.1:9"
    assert "sig-s3cr3t" not in repr(settings) and "PRIVATE KEY" not in repr(settings)
    assert VonageCarrier.secrets_of(settings) == [Secret("sig-s3cr3t"), Secret(private_pem.strip())]
    assert VonageCarrier(settings).signs_webhooks and VonageCarrier.secrets_of(object()) == []
    assert VonageCarrier(settings).stream_face().rate == 8000


def test_the_key_may_come_with_escaped_newlines_or_from_a_file(private_pem: str, tmp_path: Path):
    one_line = private_pem.strip().replace("\n", "\\n")
    assert load(Env({"VONAGE_APPLICATION_ID": APP, "VONAGE_PRIVATE_KEY": one_line})).private_key == Secret(
        private_pem.strip())
    path = tmp_path / "private.key"
    path.write_text(private_pem)
    settings = load(Env({"VONAGE_APPLICATION_ID": APP, "VONAGE_PRIVATE_KEY_FILE": str(path)}))
    assert settings.private_key == Secret(private_pem.strip())


def test_a_pkcs1_rsa_key_is_accepted():
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pkcs1 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()).decode()
    assert load(Env({"VONAGE_APPLICATION_ID": APP, "VONAGE_PRIVATE_KEY": pkcs1})).controls_calls


@pytest.mark.parametrize("env", [
    {"VONAGE_APPLICATION_ID": APP},  # no key
    {"VONAGE_PRIVATE_KEY": "KEY"},  # no application id
])
def test_the_rest_credentials_come_in_pairs(env: dict[str, str], private_pem: str):
    env = {k: private_pem if v == "KEY" else v for k, v in env.items()}
    with pytest.raises(ConfigError, match="set both VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY"):
        load(Env(env))


def test_one_key_source_only(private_pem: str, tmp_path: Path):
    path = tmp_path / "k.pem"
    path.write_text(private_pem)
    with pytest.raises(ConfigError, match="VONAGE_PRIVATE_KEY or VONAGE_PRIVATE_KEY_FILE, not both"):
        load(Env({"VONAGE_APPLICATION_ID": APP, "VONAGE_PRIVATE_KEY": private_pem,
                  "VONAGE_PRIVATE_KEY_FILE": str(path)}))


@pytest.mark.parametrize("value", ["-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----",
                                   "just-some-secret-text", "EC"])
def test_a_key_that_is_not_an_rsa_private_key_is_refused_without_showing_it(value: str):
    if value == "EC":  # a valid private key, but not RSA: RS256 needs RSA
        value = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    with pytest.raises(ConfigError, match="VONAGE_PRIVATE_KEY must be the Vonage application's private key") as info:
        load(Env({"VONAGE_APPLICATION_ID": APP, "VONAGE_PRIVATE_KEY": value}))
    assert value.strip().splitlines()[-1] not in str(info.value) and "just-some" not in str(info.value)


def test_an_unreadable_key_file_is_named(tmp_path: Path):
    with pytest.raises(ConfigError, match="VONAGE_PRIVATE_KEY_FILE cannot be read"):
        load(Env({"VONAGE_APPLICATION_ID": APP, "VONAGE_PRIVATE_KEY_FILE": str(tmp_path / "missing.key")}))
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    with pytest.raises(ConfigError, match="VONAGE_PRIVATE_KEY_FILE must be the Vonage application's private key"):
        load(Env({"VONAGE_APPLICATION_ID": APP, "VONAGE_PRIVATE_KEY_FILE": str(junk)}))


@pytest.mark.parametrize("value", ["not-a-uuid", APP + "0", "../" + APP])
def test_a_malformed_application_id_is_refused(value: str, private_pem: str):
    with pytest.raises(ConfigError, match="VONAGE_APPLICATION_ID must be the application's id"):
        load(Env({"VONAGE_APPLICATION_ID": value, "VONAGE_PRIVATE_KEY": private_pem}))


@pytest.mark.parametrize("value", ["24000", "12000", "44100", "sixteen", "0"])
def test_the_sample_rate_is_8000_or_16000(value: str):
    with pytest.raises(ConfigError, match="VONAGE_SAMPLE_RATE"):
        load(Env({"VONAGE_SAMPLE_RATE": value}))
    assert load(Env({"VONAGE_SAMPLE_RATE": "16000"})).sample_rate == 16000


@pytest.mark.parametrize("value", ["ftp://api.nexmo.com", "api.nexmo.com", "https://"])
def test_a_bad_base_url_is_refused(value: str):
    with pytest.raises(ConfigError, match="VONAGE_API_BASE_URL"):
        load(Env({"VONAGE_API_BASE_URL": value}))
