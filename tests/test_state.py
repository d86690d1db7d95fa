"""Capacity bookkeeping on a fake clock: reservations held from the webhook's answer until the stream
starts or its token expires."""

from gateway.config import load_settings
from gateway.http.stream_tokens import StreamTokens
from gateway.state import GatewayState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(limit: int, ttl: float = 60.0) -> tuple[GatewayState, Clock]:
    settings = load_settings({"MAX_CONCURRENT_CALLS": str(limit), "STREAM_TOKEN_TTL_S": str(ttl)})
    clock = Clock()
    return GatewayState(settings, settings.upstream, StreamTokens(settings.stream_token_secret, ttl),
                        clock=clock), clock


def test_reservations_count_until_the_stream_starts_or_the_token_expires():
    s, clock = state(2, ttl=60)
    assert s.reserve("CA1") and s.reserve("CA2")
    assert not s.reserve("CA3") and not s.accepting_calls()
    assert s.reserve("CA1")  # the carrier retried the webhook: the same place
    call = object()
    assert s.admit(call, "CA1")  # takes its reserved place
    assert not s.reserve("CA3")
    clock.now += 60.0  # CA2's token expired: its place is free
    assert s.reserve("CA3")
    assert not s.admit(object(), "CA9")  # no reservation and no free place
    s.call_ended(call, "CA1")
    assert s.admit(object(), "CA9")


def test_no_limit_and_draining():
    s, _ = state(0)
    assert all(s.reserve(f"CA{i}") for i in range(100))
    s.draining = True
    assert not s.reserve("CA100") and not s.accepting_calls()
