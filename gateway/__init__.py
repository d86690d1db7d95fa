"""Telephony voice-agent gateway: carrier media streams bridged to Realtime sessions."""

__version__ = "0.1.0"
