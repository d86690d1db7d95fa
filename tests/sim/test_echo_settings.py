"""ECHO_HANDSHAKE_DELAY_MS and ECHO_SESSION_UPDATE_DELAY_MS: the offline echo line's set-up latency."""

from __future__ import annotations

from gateway.config import load_settings


def test_echo_delays():
    assert load_settings({}).echo_delays.handshake_ms == 0.0
    delays = load_settings({"ECHO_HANDSHAKE_DELAY_MS": "250", "ECHO_SESSION_UPDATE_DELAY_MS": "100"}).echo_delays
    assert (delays.handshake_ms, delays.session_update_ms) == (250.0, 100.0)
