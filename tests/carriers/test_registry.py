"""The carrier registry: names, settings by name, built carriers, secrets."""

from gateway.carriers import registry
from gateway.carriers.base import Carrier
from gateway.carriers.plivo.carrier import PlivoCarrier
from gateway.carriers.plivo.settings import PlivoSettings
from gateway.carriers.signalwire.carrier import SignalWireCarrier
from gateway.carriers.signalwire.settings import SignalWireSettings
from gateway.carriers.telnyx.carrier import TelnyxCarrier
from gateway.carriers.telnyx.settings import TelnyxSettings
from gateway.carriers.twilio.carrier import TwilioCarrier
from gateway.carriers.twilio.settings import TwilioSettings
from gateway.carriers.vonage.carrier import VonageCarrier
from gateway.carriers.vonage.settings import VonageSettings
from gateway.env import Env, Secret

ACCOUNT = "AC" + "ab" * 16


def test_names():
    assert registry.CARRIERS == {"twilio": TwilioCarrier, "signalwire": SignalWireCarrier, "plivo": PlivoCarrier,
                                  "telnyx": TelnyxCarrier, "vonage": VonageCarrier}
    assert registry.DEFAULT_CARRIER in registry.CARRIERS
    for name, carrier in registry.CARRIERS.items():
        assert issubclass(carrier, Carrier) and carrier.name == name


def test_load_settings_and_build():
    settings = registry.load_settings(Env({"TWILIO_AUTH_TOKEN": "tok", "TWILIO_ACCOUNT_SID": ACCOUNT}))
    assert settings == {"twilio": TwilioSettings(auth_token=Secret("tok"), account_sid=ACCOUNT),
                        "signalwire": SignalWireSettings(), "plivo": PlivoSettings(),
                        "telnyx": TelnyxSettings(), "vonage": VonageSettings()}
    carriers = registry.build(settings)
    assert list(carriers) == ["twilio", "signalwire", "plivo", "telnyx", "vonage"]
    assert isinstance(carriers["signalwire"], SignalWireCarrier) and not carriers["signalwire"].signs_webhooks
    assert isinstance(carriers["twilio"], TwilioCarrier) and carriers["twilio"].settings is settings["twilio"]
    assert carriers["twilio"].signs_webhooks


def test_secrets():
    assert registry.secrets(registry.load_settings(Env({}))) == []
    env = Env({"TWILIO_AUTH_TOKEN": "tok", "TWILIO_ACCOUNT_SID": ACCOUNT,
               "TWILIO_API_KEY_SID": "SK" + "cd" * 16, "TWILIO_API_KEY_SECRET": "key"})
    assert registry.secrets(registry.load_settings(env)) == [Secret("tok"), Secret("key")]


def test_fixed_frames_need_marks():
    """The answer's last mark is what flushes a held partial frame: a fixed-frame carrier without marks
    would keep the end of every answer to itself, so it cannot be declared."""
    import pytest

    from gateway.carriers.base import Capabilities

    assert Capabilities(marks=True, frame_ms=20).frame_ms == 20
    with pytest.raises(ValueError, match="needs marks"):
        Capabilities(marks=False, frame_ms=20)


async def test_which_carriers_send_keys_and_how():
    """send_dtmf: Plivo on the stream (sendDTMF), Vonage through the Voice API; Twilio, SignalWire and Telnyx
    cannot without ending the stream: their faces do not encode keys and their call control refuses."""
    import pytest

    from gateway.carriers.base import DTMF_CALL_CONTROL, DTMF_STREAM, CallControlUnavailable, Capabilities
    from gateway.core.codec import PCMU
    from gateway.core.events import SendDigits, StreamStart

    how = {name: carrier.capabilities.send_dtmf for name, carrier in registry.CARRIERS.items()}
    assert how == {"twilio": "", "signalwire": "", "plivo": DTMF_STREAM, "telnyx": "", "vonage": DTMF_CALL_CONTROL}
    carriers = registry.build(registry.load_settings(Env({})))
    start = StreamStart("MZ1", "CA1", None, {}, PCMU)
    for name in ("twilio", "signalwire", "telnyx"):
        with pytest.raises(TypeError):
            carriers[name].stream_face().encode(SendDigits("1"))
        with pytest.raises(CallControlUnavailable, match="cannot send keys without ending the media stream"):
            await carriers[name].send_dtmf(start, "1")
    with pytest.raises(ValueError, match="send_dtmf must be"):
        Capabilities(send_dtmf="sms")
    for carrier in carriers.values():
        await carrier.close()
