"""Twilio's TwiML and signature checks (protocol-reference.md §4.1, §4.2, §4.7)."""

import base64
import hashlib
import hmac

import pytest
from multidict import CIMultiDict, MultiDict
from twilio.request_validator import RequestValidator

from gateway.carriers.base import Fallback
from gateway.carriers.twilio.webhook import (
    answer_twiml,
    busy_twiml,
    call_sid_valid,
    fallback_twiml,
    handshake_signature_valid,
    hangup_twiml,
    signature_valid,
    transfer_twiml,
)
from gateway.env import Secret

XML = '<?xml version="1.0" encoding="UTF-8"?>'

# The §4.7 test vector.
VECTOR_TOKEN = Secret("12345")
VECTOR_URL = "https://example.com/myapp.php?foo=1&bar=2"
VECTOR_FORM = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234",
               "From": "+14158675310", "To": "+18005551212"}
VECTOR_SIGNATURE = "L/OH5YylLD5NRKLltdqwSvS0BnU="

STREAM_URL = "wss://gw.example.com/media"


def sign(token: str, url: str, form: dict[str, str] | None = None) -> str:
    """The signature by the §4.7 recipe, written out: URL, then sorted name+value, HMAC-SHA1, base64."""
    data = url + "".join(name + value for name, value in sorted((form or {}).items()))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


# --- webhook signatures ----------------------------------------------------------------------------


def test_the_reference_test_vector_is_valid():
    assert sign("12345", VECTOR_URL, VECTOR_FORM) == VECTOR_SIGNATURE
    assert RequestValidator("12345").compute_signature(VECTOR_URL, VECTOR_FORM) == VECTOR_SIGNATURE
    headers = {"X-Twilio-Signature": VECTOR_SIGNATURE}
    assert signature_valid(VECTOR_TOKEN, VECTOR_URL, VECTOR_FORM, headers)
    assert signature_valid(VECTOR_TOKEN, VECTOR_URL, MultiDict(VECTOR_FORM), CIMultiDict(headers))
    # Header names are case-insensitive, whatever mapping the HTTP layer hands over.
    assert signature_valid(VECTOR_TOKEN, VECTOR_URL, VECTOR_FORM, {"x-twilio-signature": VECTOR_SIGNATURE})


@pytest.mark.parametrize(("url", "form", "signature"), [
    (VECTOR_URL, VECTOR_FORM, "L/OH5YylLD5NRKLltdqwSvS0BnX="),  # forged
    (VECTOR_URL, VECTOR_FORM, ""),
    ("https://example.com/myapp.php?foo=1&bar=3", VECTOR_FORM, VECTOR_SIGNATURE),  # another URL
    ("https://evil.example.com/myapp.php?foo=1&bar=2", VECTOR_FORM, VECTOR_SIGNATURE),
    (VECTOR_URL, {**VECTOR_FORM, "Digits": "9"}, VECTOR_SIGNATURE),  # another form
    (VECTOR_URL, {}, VECTOR_SIGNATURE),
])
def test_a_forged_or_misplaced_signature_is_refused(url, form, signature):
    assert not signature_valid(VECTOR_TOKEN, url, form, {"X-Twilio-Signature": signature})


def test_a_missing_signature_is_refused_unless_no_token_is_set():
    assert not signature_valid(VECTOR_TOKEN, VECTOR_URL, VECTOR_FORM, {})
    assert signature_valid(None, VECTOR_URL, VECTOR_FORM, {})
    assert signature_valid(None, VECTOR_URL, VECTOR_FORM, {"X-Twilio-Signature": "anything"})


def test_get_webhooks_sign_the_url_alone():
    url = "https://gw.example.com/voice?CallSid=CA1&From=%2B14155550100"
    signature = sign("12345", url)
    assert signature_valid(VECTOR_TOKEN, url, {}, {"X-Twilio-Signature": signature})
    assert not signature_valid(VECTOR_TOKEN, url.replace("CA1", "CA2"), {}, {"X-Twilio-Signature": signature})


def test_the_signature_settings_header_names_the_algorithm():
    digest = hmac.new(b"12345", VECTOR_URL.encode() + b"".join(
        (k + v).encode() for k, v in sorted(VECTOR_FORM.items())), hashlib.sha256).digest()
    sha256 = base64.b64encode(digest).decode()
    settings = {"X-Twilio-Webhooks-Signature-Settings": "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"}
    assert signature_valid(VECTOR_TOKEN, VECTOR_URL, VECTOR_FORM, {"X-Twilio-Signature": sha256, **settings})
    assert not signature_valid(VECTOR_TOKEN, VECTOR_URL, VECTOR_FORM, {"X-Twilio-Signature": sha256})
    unknown = {"X-Twilio-Webhooks-Signature-Settings": "algorithm=HMAC_MD5"}
    assert not signature_valid(VECTOR_TOKEN, VECTOR_URL, VECTOR_FORM,
                               {"X-Twilio-Signature": VECTOR_SIGNATURE, **unknown})


# --- handshake signatures --------------------------------------------------------------------------


@pytest.mark.parametrize("signed_url", [STREAM_URL, STREAM_URL + "/"])
def test_the_handshake_is_signed_over_the_wss_url_with_or_without_a_slash(signed_url):
    headers = {"X-Twilio-Signature": sign("12345", signed_url)}
    assert handshake_signature_valid(VECTOR_TOKEN, STREAM_URL, headers)


def test_a_forged_handshake_is_refused_and_an_unsigned_one_passes():
    assert not handshake_signature_valid(VECTOR_TOKEN, STREAM_URL, {"X-Twilio-Signature": sign("54321", STREAM_URL)})
    https = STREAM_URL.replace("wss://", "https://")
    assert not handshake_signature_valid(VECTOR_TOKEN, STREAM_URL, {"X-Twilio-Signature": sign("12345", https)})
    assert not handshake_signature_valid(VECTOR_TOKEN, STREAM_URL, {"X-Twilio-Signature": ""})
    assert handshake_signature_valid(VECTOR_TOKEN, STREAM_URL, {})  # the stream token is the gate
    assert handshake_signature_valid(None, STREAM_URL, {"X-Twilio-Signature": "forged"})


# --- TwiML -----------------------------------------------------------------------------------------


def test_the_answer_connects_the_stream_with_each_parameter_escaped():
    twiml = answer_twiml(STREAM_URL, {"token": "t<&>\"" + "k" * 300, "from": "+1415&<>", "to": "x" * 300})
    assert twiml == (XML + f'<Response><Connect><Stream url="{STREAM_URL}">'
                     f'<Parameter name="token" value="t&lt;&amp;&gt;&quot;{"k" * 300}" />'
                     '<Parameter name="from" value="+1415&amp;&lt;&gt;" />'
                     f'<Parameter name="to" value="{"x" * 200}" />'
                     "</Stream></Connect></Response>")


def test_the_answer_without_parameters():
    assert answer_twiml(STREAM_URL, {}) == (
        XML + f'<Response><Connect><Stream url="{STREAM_URL}" /></Connect></Response>')


def test_busy_hangup_and_fallback_twiml():
    assert busy_twiml("Busy & sorry.") == XML + "<Response><Say>Busy &amp; sorry.</Say><Hangup /></Response>"
    assert hangup_twiml() == XML + "<Response><Hangup /></Response>"
    assert fallback_twiml(Fallback(message="Sorry & goodbye.")) == (
        XML + "<Response><Say>Sorry &amp; goodbye.</Say><Hangup /></Response>")
    assert fallback_twiml(Fallback(message="unused", number="+14155550100")) == (
        XML + "<Response><Dial>+14155550100</Dial></Response>")


def test_transfer_twiml_dials_a_number_or_a_sip_uri():
    assert transfer_twiml("+14155550100") == XML + "<Response><Dial><Number>+14155550100</Number></Dial></Response>"
    assert transfer_twiml("sip:agent@pbx.example.com;transport=tls") == (
        XML + "<Response><Dial><Sip>sip:agent@pbx.example.com;transport=tls</Sip></Dial></Response>")
    assert transfer_twiml("sip:a&b@x") == XML + "<Response><Dial><Sip>sip:a&amp;b@x</Sip></Dial></Response>"


@pytest.mark.parametrize("target", ["14155550100", "+0123456789", "+1", "tel:+14155550100", "sip:", "sip:a b",
                                    "client:alice", ""])
def test_transfer_twiml_refuses_other_targets(target):
    with pytest.raises(ValueError, match=r"neither an E\.164 number nor a sip: URI"):
        transfer_twiml(target)


@pytest.mark.parametrize(("sid", "valid"), [
    ("CA" + "0" * 32, True),
    ("CA1", True),
    ("CA" + "x" * 62, True),
    ("CA" + "x" * 63, False),
    ("ca" + "0" * 32, False),
    ("AC" + "0" * 32, False),
    ("", False),
    (None, False),
])
def test_call_sid_valid(sid, valid):
    assert call_sid_valid(sid) is valid
