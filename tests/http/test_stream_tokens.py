"""Stream tokens: HMAC-signed, bound to the CallSid, short-lived, single use."""

import pytest

from gateway.config import Secret
from gateway.http.stream_tokens import StreamTokens, TokenRejected


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def make(clock: Clock, secret: str = "s" * 32) -> StreamTokens:
    return StreamTokens(Secret(secret), ttl_s=60, clock=clock)


def reason(tokens: StreamTokens, token, call_sid: str) -> str:
    with pytest.raises(TokenRejected) as info:
        tokens.verify(token, call_sid)
    return info.value.reason


def test_valid_once_then_replayed():
    clock = Clock()
    tokens = make(clock)
    token = tokens.mint("CA1")
    tokens.verify(token, "CA1")
    assert reason(tokens, token, "CA1") == "replayed"


def test_another_replica_with_the_same_secret_verifies():
    clock = Clock()
    assert make(clock).verify(make(clock).mint("CA1"), "CA1") is None


def test_rejections():
    clock = Clock()
    tokens = make(clock)
    token = tokens.mint("CA1")
    assert reason(tokens, token, "CA2") == "bad_signature"
    assert reason(make(clock, "t" * 32), token, "CA1") == "bad_signature"
    assert reason(tokens, None, "CA1") == "missing"
    assert reason(tokens, "abc", "CA1") == "malformed"
    forged = token.rsplit(".", 1)[0] + ".AAAA"
    assert reason(tokens, forged, "CA1") == "bad_signature"
    clock.t += 62
    assert reason(tokens, token, "CA1") == "expired"


def test_extending_the_expiry_breaks_the_signature():
    clock = Clock()
    tokens = make(clock)
    v, exp, nonce, sig = tokens.mint("CA1").split(".")
    assert reason(tokens, f"{v}.{int(exp) + 3600}.{nonce}.{sig}", "CA1") == "bad_signature"
