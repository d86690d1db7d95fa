"""The offline echo line's latency settings: how long its handshake and a session.update take.

Zero by default (tests and the load bench want the line as fast as it goes). To see what a real upstream's
set-up costs a call (the warm pool's measurement, `python -m gateway.bench.first_audio`), something like
250 ms for the handshake (TCP + TLS + the WebSocket upgrade to OpenAI from a US region, and the server's
session.created) and 100 ms for a session.update round trip.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.env import CollectingEnv


@dataclass(frozen=True)
class EchoDelays:
    handshake_ms: float = 0.0  # ECHO_HANDSHAKE_DELAY_MS: before the line answers the WebSocket upgrade
    session_update_ms: float = 0.0  # ECHO_SESSION_UPDATE_DELAY_MS: before it applies a session.update


def read(env: CollectingEnv) -> EchoDelays:
    return EchoDelays(env.float("ECHO_HANDSHAKE_DELAY_MS", 0.0, 0.0, 10000.0),
                      env.float("ECHO_SESSION_UPDATE_DELAY_MS", 0.0, 0.0, 10000.0))
