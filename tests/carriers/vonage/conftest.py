"""Shared by the Vonage tests: an RSA key pair like the one the Dashboard makes for an application."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def private_pem(rsa_key: rsa.RSAPrivateKey) -> str:
    """The private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----), as Vonage's private.key."""
    return rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()


@pytest.fixture(scope="session")
def public_pem(rsa_key: rsa.RSAPrivateKey) -> str:
    return rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()
