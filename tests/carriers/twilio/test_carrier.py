"""TwilioCarrier: webhooks read and verified, answers, stream faces, settings and secrets."""

import pytest

from gateway.carriers.base import CallControlUnavailable, Carrier, Fallback, InboundCall, WebhookRefused, WebhookRequest
from gateway.carriers.twilio.carrier import TwilioCarrier
from gateway.carriers.twilio.settings import TwilioSettings, load
from gateway.carriers.twilio.stream import TwilioStream
from gateway.core.codec import PCMU
from gateway.core.events import StreamStart
from gateway.env import ConfigError, Env, Secret

from .test_webhook import VECTOR_FORM, VECTOR_SIGNATURE, VECTOR_TOKEN, VECTOR_URL, sign

ACCOUNT = "AC" + "ab" * 16
KEY = "SK" + "cd" * 16
CALL = "CA" + "01" * 16
FIELDS = {"CallSid": CALL, "AccountSid": ACCOUNT, "From": "+14155550100", "To": "+14155550199",
          "Direction": "inbound", "CallStatus": "ringing"}


def request(method: str = "POST", url: str = "https://gw.example.com/voice", fields: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> WebhookRequest:
    fields = FIELDS if fields is None else fields
    return WebhookRequest(method=method, url=url, headers=headers or {},
                          form=fields if method == "POST" else {}, query=fields if method == "GET" else {})


def test_what_it_declares():
    carrier = TwilioCarrier(TwilioSettings())
    assert isinstance(carrier, Carrier) and carrier.name == "twilio"
    assert (carrier.capabilities.marks, carrier.capabilities.binary_audio, carrier.capabilities.codecs) == (
        True, False, (PCMU,))
    assert not carrier.signs_webhooks
    assert TwilioCarrier(TwilioSettings(auth_token=Secret("t"))).signs_webhooks
    face = carrier.stream_face()
    assert isinstance(face, TwilioStream) and face is not carrier.stream_face()


@pytest.mark.parametrize("webhook", [
    request("POST"), request("GET"), WebhookRequest("post", "https://x/voice", {}, form=FIELDS, query={}),
])
def test_inbound_call_from_post_form_or_get_query(webhook):
    call = TwilioCarrier(TwilioSettings()).inbound_call(webhook)
    assert call == InboundCall(call_id=CALL, account_id=ACCOUNT, from_number="+14155550100",
                               to_number="+14155550199", direction="inbound")


def test_inbound_call_reads_only_the_fields_of_its_method():
    carrier = TwilioCarrier(TwilioSettings())
    post_with_query = WebhookRequest("POST", "https://x/voice", {}, form={}, query=FIELDS)
    with pytest.raises(WebhookRefused):
        carrier.inbound_call(post_with_query)
    call = carrier.inbound_call(request(fields={"CallSid": CALL, "From": ""}))
    assert (call.account_id, call.from_number, call.to_number, call.direction) == (None, None, None, None)


@pytest.mark.parametrize("fields", [{}, {"CallSid": ""}, {"CallSid": "XX" + "0" * 32}, {"CallSid": "CA" + "0" * 63}])
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_inbound_call_refused_without_a_good_call_sid(fields, method):
    with pytest.raises(WebhookRefused, match="CallSid is missing or malformed") as refused:
        TwilioCarrier(TwilioSettings()).inbound_call(request(method, fields=fields))
    assert refused.value.label == "bad_request"


def test_verify_webhook_signs_the_form_of_a_post_and_nothing_of_a_get():
    carrier = TwilioCarrier(TwilioSettings(auth_token=VECTOR_TOKEN))
    signed = {"X-Twilio-Signature": VECTOR_SIGNATURE}
    assert carrier.verify_webhook(request("POST", VECTOR_URL, VECTOR_FORM, signed))
    assert not carrier.verify_webhook(request("POST", VECTOR_URL, {**VECTOR_FORM, "To": "+1"}, signed))
    get_url = "https://gw.example.com/voice?CallSid=CA1"
    get = WebhookRequest("GET", get_url, {"X-Twilio-Signature": sign("12345", get_url)}, form=VECTOR_FORM,
                         query={"CallSid": "CA1"})
    assert carrier.verify_webhook(get)  # a GET's form, if any, is not signed
    assert not carrier.verify_webhook(request("POST", VECTOR_URL, VECTOR_FORM, {}))
    assert TwilioCarrier(TwilioSettings()).verify_webhook(request("POST", VECTOR_URL, VECTOR_FORM, {}))


def test_verify_handshake():
    carrier = TwilioCarrier(TwilioSettings(auth_token=VECTOR_TOKEN))
    url = "wss://gw.example.com/media/twilio"
    assert carrier.verify_handshake(url, {"X-Twilio-Signature": sign("12345", url + "/")})
    assert not carrier.verify_handshake(url, {"X-Twilio-Signature": sign("12345", url + "x")})
    assert carrier.verify_handshake(url, {})


def test_answer_and_busy_are_twiml():
    carrier = TwilioCarrier(TwilioSettings())
    call = InboundCall(call_id=CALL, from_number="+14155550100", to_number="+14155550199")
    answer = carrier.answer(call, "wss://gw.example.com/media", {"token": "tok", "from": "+14155550100"})
    assert answer.content_type == "text/xml"
    assert answer.body.endswith('<Connect><Stream url="wss://gw.example.com/media">'
                                '<Parameter name="token" value="tok" /><Parameter name="from" value="+14155550100" />'
                                '</Stream></Connect></Response>')
    assert "<Parameter" not in carrier.answer(InboundCall(call_id=CALL), "wss://x/media", {}).body
    busy = carrier.busy("All lines busy.")
    assert (busy.content_type, busy.body) == ("text/xml", '<?xml version="1.0" encoding="UTF-8"?>'
                                              "<Response><Say>All lines busy.</Say><Hangup /></Response>")


async def test_call_control_without_credentials_is_unavailable():
    carrier = TwilioCarrier(TwilioSettings())
    start = StreamStart(stream_id="MZ1", call_id=CALL, account_id=ACCOUNT, parameters={}, codec=PCMU)
    with pytest.raises(CallControlUnavailable):
        await carrier.fall_back(start, Fallback(message="Sorry."))
    with pytest.raises(CallControlUnavailable):
        await carrier.hang_up(start)
    with pytest.raises(CallControlUnavailable):
        await carrier.transfer(start, "+14155550100")
    with pytest.raises(ValueError, match=r"neither an E\.164 number"):
        await carrier.transfer(start, "not a target")
    await carrier.close()


# --- settings --------------------------------------------------------------------------------------


def test_settings_defaults():
    assert load(Env({})) == TwilioSettings()
    assert TwilioCarrier.load_settings(Env({})) == TwilioSettings()
    assert TwilioSettings().api_base_url == "https://api.twilio.com"


def test_settings_valid_values():
    settings = TwilioCarrier.load_settings(Env({
        "TWILIO_AUTH_TOKEN": " token-1 ", "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_API_KEY_SID": KEY,
        "TWILIO_API_KEY_SECRET": "key-secret", "TWILIO_API_BASE_URL": "http://127.0.0.1:8099/",
    }))
    assert settings == TwilioSettings(auth_token=Secret("token-1"), account_sid=ACCOUNT, api_key_sid=KEY,
                                      api_key_secret=Secret("key-secret"), api_base_url="http://127.0.0.1:8099")
    assert "token-1" not in repr(settings) and "key-secret" not in repr(settings)


@pytest.mark.parametrize(("env", "message"), [
    ({"TWILIO_ACCOUNT_SID": "AC123"}, "TWILIO_ACCOUNT_SID must be AC followed by 32 hex digits"),
    ({"TWILIO_ACCOUNT_SID": "SK" + "ab" * 16}, "TWILIO_ACCOUNT_SID must be AC followed by 32 hex digits"),
    ({"TWILIO_API_KEY_SID": KEY, "TWILIO_ACCOUNT_SID": ACCOUNT},
     "set both TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET, or neither"),
    ({"TWILIO_API_KEY_SECRET": "s"}, "set both TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET, or neither"),
    ({"TWILIO_API_KEY_SID": "SK1", "TWILIO_API_KEY_SECRET": "s", "TWILIO_ACCOUNT_SID": ACCOUNT},
     "TWILIO_API_KEY_SID must be SK followed by 32 hex digits"),
    ({"TWILIO_API_KEY_SID": KEY, "TWILIO_API_KEY_SECRET": "s"},
     "TWILIO_API_KEY_SID needs TWILIO_ACCOUNT_SID (the account the key belongs to)"),
    ({"TWILIO_API_BASE_URL": "ftp://api.twilio.com"},
     "TWILIO_API_BASE_URL must be an absolute https/http URL (got 'ftp://api.twilio.com')"),
    ({"TWILIO_API_BASE_URL": "api.twilio.com"},
     "TWILIO_API_BASE_URL must be an absolute https/http URL (got 'api.twilio.com')"),
])
def test_settings_invalid_values(env, message):
    with pytest.raises(ConfigError) as error:
        load(Env(env))
    assert str(error.value) == message


def test_secrets_listed():
    assert TwilioSettings().secrets() == [] and TwilioCarrier.secrets_of(TwilioSettings()) == []
    both = TwilioSettings(auth_token=Secret("a"), api_key_sid=KEY, api_key_secret=Secret("b"))
    assert both.secrets() == [Secret("a"), Secret("b")]
    assert TwilioCarrier.secrets_of(both) == [Secret("a"), Secret("b")]
    assert TwilioCarrier.secrets_of(TwilioSettings(api_key_secret=Secret("b"))) == [Secret("b")]
    assert TwilioCarrier.secrets_of(object()) == []
