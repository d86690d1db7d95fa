"""Every carrier the gateway speaks, by name: the one place that lists them.

Adding a carrier is one line in `CARRIERS`. The HTTP layer serves each carrier under its name
(`/voice/<name>`, `/media/<name>`); the bare `/voice` and `/media` routes serve `DEFAULT_CARRIER`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.carriers.base import Carrier
from gateway.carriers.plivo.carrier import PlivoCarrier
from gateway.carriers.signalwire.carrier import SignalWireCarrier
from gateway.carriers.telnyx.carrier import TelnyxCarrier
from gateway.carriers.twilio.carrier import TwilioCarrier
from gateway.carriers.vonage.carrier import VonageCarrier
from gateway.env import Env, Secret

CARRIERS: dict[str, type[Carrier]] = {
    "twilio": TwilioCarrier,
    "signalwire": SignalWireCarrier,
    "plivo": PlivoCarrier,
    "telnyx": TelnyxCarrier,
    "vonage": VonageCarrier,
}
DEFAULT_CARRIER = "twilio"  # what the /voice and /media aliases serve


def load_settings(env: Env) -> dict[str, Any]:
    """Each carrier's settings by name, read and validated (ConfigError names the variable)."""
    return {name: carrier.load_settings(env) for name, carrier in CARRIERS.items()}


def build(settings: Mapping[str, Any]) -> dict[str, Carrier]:
    """One carrier object per name in `settings` (as `load_settings` returns them), for the process."""
    return {name: CARRIERS[name](value) for name, value in settings.items()}


def secrets(settings: Mapping[str, Any]) -> list[Secret]:
    """Every secret of every carrier's settings, for the log redaction."""
    return [secret for name, value in settings.items() for secret in CARRIERS[name].secrets_of(value)]
