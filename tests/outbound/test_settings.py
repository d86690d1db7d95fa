"""OUTBOUND_*: read with the rest of the settings, every problem named."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, load_settings
from gateway.outbound.settings import OutboundSettings, dialing_carriers


def test_defaults():
    assert load_settings({}).outbound == OutboundSettings(0, (), 30, "twilio")


def test_values_are_read():
    s = load_settings({"OUTBOUND_MAX_PER_MINUTE": "20", "OUTBOUND_ALLOWED_PREFIXES": " +1, +44 ,",
                       "OUTBOUND_RING_TIMEOUT_S": "45", "OUTBOUND_CARRIER": "twilio"}).outbound
    assert s == OutboundSettings(20, ("+1", "+44"), 45, "twilio")
    assert s.allows("+14155550100") and s.allows("+447700900123") and not s.allows("+33612345678")
    assert OutboundSettings().allows("+33612345678")


@pytest.mark.parametrize(("env", "message"), [
    ({"OUTBOUND_MAX_PER_MINUTE": "-1"}, "OUTBOUND_MAX_PER_MINUTE"),
    ({"OUTBOUND_RING_TIMEOUT_S": "2"}, "OUTBOUND_RING_TIMEOUT_S"),
    ({"OUTBOUND_RING_TIMEOUT_S": "601"}, "OUTBOUND_RING_TIMEOUT_S"),
    ({"OUTBOUND_ALLOWED_PREFIXES": "+1,44,+0"}, "OUTBOUND_ALLOWED_PREFIXES must be comma-separated E.164 prefixes"),
    ({"OUTBOUND_CARRIER": "plivo"}, "OUTBOUND_CARRIER must be a carrier that can place calls: twilio (got 'plivo': "
                                    "it cannot place calls yet)"),
    ({"OUTBOUND_CARRIER": "acme"}, "OUTBOUND_CARRIER must be a carrier that can place calls: twilio (got 'acme')"),
])
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError) as raised:
        load_settings(env)
    assert message in str(raised.value)


def test_every_error_is_reported_at_once():
    with pytest.raises(ConfigError) as raised:
        load_settings({"OUTBOUND_MAX_PER_MINUTE": "x", "OUTBOUND_CARRIER": "acme", "PORT": "0"})
    text = str(raised.value)
    assert "OUTBOUND_MAX_PER_MINUTE" in text and "OUTBOUND_CARRIER" in text and "PORT" in text


def test_only_twilio_places_calls_for_now():
    assert dialing_carriers() == ["twilio"]
