"""SignalWireCarrier: signatures (computed here from the scheme, not with the validator under test), UUID
ids, the cXML answer, the stream face, and call control refused before any request."""

import base64
import hashlib
import hmac
import uuid
import xml.etree.ElementTree as ET

import orjson
import pytest

from gateway.carriers.base import CallControlUnavailable, Carrier, Fallback, WebhookRefused, WebhookRequest
from gateway.carriers.signalwire.carrier import SignalWireCarrier
from gateway.carriers.signalwire.settings import SignalWireSettings
from gateway.carriers.signalwire.stream import SignalWireStream
from gateway.carriers.twilio.stream import TwilioStream
from gateway.core.codec import PCMU
from gateway.core.events import CallerAudio, MarkPlayed, ProtocolViolation, StreamStart, StreamStop
from gateway.env import Secret

KEY = "PSK_test_signing_key_0123456789"
PROJECT = "b08dacad-2f6c-4de1-93d6-cc732e0c69c5"
CALL = "76ac3c36-56da-4a3e-a0d6-b5f8df6da9ad"
URL = "https://gw.example.com/voice/signalwire"
FIELDS = {"CallSid": CALL, "AccountSid": PROJECT, "From": "+14155550100", "To": "+14155550199",
          "Direction": "inbound", "CallStatus": "ringing", "ApiVersion": "2010-04-01"}


def compat_signature(key: str, url: str, fields: dict[str, str]) -> str:
    """SignalWire's cXML scheme (Twilio's): base64 HMAC-SHA1 over the URL then each field's name and value,
    sorted by name."""
    data = url + "".join(name + fields[name] for name in sorted(fields))
    return base64.b64encode(hmac.new(key.encode(), data.encode(), hashlib.sha1).digest()).decode()


def raw_signature(key: str, url: str, body: bytes) -> str:
    """SignalWire's JSON-webhook scheme: hex HMAC-SHA1 over the URL then the raw body."""
    return hmac.new(key.encode(), url.encode() + body, hashlib.sha1).hexdigest()


def request(fields: dict[str, str] | None = None, headers: dict[str, str] | None = None, method: str = "POST",
            url: str = URL, body: bytes = b"") -> WebhookRequest:
    fields = FIELDS if fields is None else fields
    return WebhookRequest(method=method, url=url, headers=headers or {}, form=fields if method == "POST" else {},
                          query=fields if method == "GET" else {}, body=body)


def signed() -> SignalWireCarrier:
    return SignalWireCarrier(SignalWireSettings(signing_key=Secret(KEY)))


def test_what_it_declares():
    carrier = SignalWireCarrier(SignalWireSettings())
    assert isinstance(carrier, Carrier) and carrier.name == "signalwire"
    caps = carrier.capabilities
    assert (caps.marks, caps.binary_audio, caps.codecs) == (True, False, (PCMU,))
    assert not carrier.signs_webhooks and signed().signs_webhooks
    face = carrier.stream_face()
    assert isinstance(face, SignalWireStream) and isinstance(face, TwilioStream)
    assert face is not carrier.stream_face()
    assert SignalWireCarrier.secrets_of(SignalWireSettings(signing_key=Secret("k"), api_token=Secret("t"))) == [
        Secret("k"), Secret("t")]
    assert SignalWireCarrier.secrets_of(object()) == []


def test_unsigned_mode_accepts_anything():
    assert SignalWireCarrier(SignalWireSettings()).verify_webhook(request())


@pytest.mark.parametrize("name", ["X-SignalWire-Signature", "x-signalwire-signature", "X-Twilio-Signature"])
def test_a_signature_in_either_header_is_accepted(name):
    assert signed().verify_webhook(request(headers={name: compat_signature(KEY, URL, FIELDS)}))


def test_the_url_query_and_a_get_are_signed_too():
    url = URL + "?tenant=a&b=2"
    assert signed().verify_webhook(request(url=url, headers={"X-SignalWire-Signature":
                                                             compat_signature(KEY, url, FIELDS)}))
    # A GET signs the URL (with its query) alone.
    get = request(method="GET", url=url, headers={"X-SignalWire-Signature": compat_signature(KEY, url, {})})
    assert signed().verify_webhook(get)


def test_the_raw_body_scheme_is_accepted_with_the_same_key():
    body = b"CallSid=" + CALL.encode() + b"&From=%2B14155550100"
    assert signed().verify_webhook(request(body=body, headers={"X-SignalWire-Signature":
                                                              raw_signature(KEY, URL, body)}))
    assert not signed().verify_webhook(request(body=body, headers={"X-SignalWire-Signature":
                                                                  raw_signature("another-key", URL, body)}))


@pytest.mark.parametrize("headers", [
    {},  # unsigned
    {"X-SignalWire-Signature": ""},
    {"X-SignalWire-Signature": compat_signature("not-the-key", URL, FIELDS)},  # another project's key
    {"X-SignalWire-Signature": compat_signature(KEY, URL.replace("gw.", "evil."), FIELDS)},  # another URL
    {"X-SignalWire-Signature": compat_signature(KEY, URL, {**FIELDS, "From": "+15550000000"})},  # fields changed
    {"X-SignalWire-Signature": "Ünïcode-is-not-a-signature"},
    {"X-Other-Signature": compat_signature(KEY, URL, FIELDS)},
])
def test_forged_or_missing_signatures_are_refused(headers):
    assert not signed().verify_webhook(request(headers=headers))


def test_a_uuid_call_is_read():
    call = signed().inbound_call(request())
    assert (call.call_id, call.account_id, call.from_number, call.to_number, call.direction) == (
        CALL, PROJECT, "+14155550100", "+14155550199", "inbound")
    upper = signed().inbound_call(request(fields={"CallSid": CALL.upper()}, method="GET"))
    assert upper.call_id == CALL.upper() and upper.account_id is None


@pytest.mark.parametrize(("fields", "message"), [
    ({}, "CallSid is missing"),
    ({"CallSid": "CA" + "ab" * 16}, "not a SignalWire call id"),  # Twilio's shape
    ({"CallSid": CALL + "0"}, "not a SignalWire call id"),
    ({"CallSid": CALL.replace("-", "")}, "not a SignalWire call id"),
    ({"CallSid": CALL, "AccountSid": "AC" + "ab" * 16}, "AccountSid is not a SignalWire project id"),
])
def test_ids_that_are_not_uuids_are_refused(fields, message):
    with pytest.raises(WebhookRefused, match=message) as info:
        signed().inbound_call(request(fields=fields))
    assert info.value.label == "bad_request"


def test_the_answer_is_cxml_connect_stream_with_the_parameters():
    carrier = signed()
    answer = carrier.answer(carrier.inbound_call(request()), "wss://gw.example.com/media/signalwire",
                            {"token": "t" * 300, "from": "+14155550100"})
    assert answer.content_type == "text/xml"
    root = ET.fromstring(answer.body)
    stream = root.find("./Connect/Stream")
    assert root.tag == "Response" and stream is not None
    assert stream.get("url") == "wss://gw.example.com/media/signalwire"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"token": "t" * 300, "from": "+14155550100"}  # the token whole
    busy = ET.fromstring(carrier.busy("All lines are busy.").body)
    assert [child.tag for child in busy] == ["Say", "Hangup"] and busy.findtext("Say") == "All lines are busy."


def test_the_handshake_is_not_signed_by_signalwire():
    assert signed().verify_handshake("wss://gw.example.com/media/signalwire", {})


START = {"event": "start", "sequenceNumber": "1", "start": {
    "streamSid": "7d56cc11-536d-4a45-b4fb-ed3d55be843b", "accountSid": PROJECT, "callSid": CALL,
    "tracks": ["inbound"], "customParameters": {"token": "tok"},
    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
SID = START["start"]["streamSid"]


def test_the_stream_face_reads_signalwire_frames_as_documented():
    face = signed().stream_face()
    assert face.decode(b'{"event":"connected","protocol":"Call","version":"0.2.0"}').__class__.__name__ == "StreamNoise"
    start = face.decode(orjson.dumps(START))  # no top-level streamSid, as in SignalWire's example
    assert start == StreamStart(stream_id=SID, call_id=CALL, account_id=PROJECT, parameters={"token": "tok"},
                                codec=PCMU)
    media = {"event": "media", "sequenceNumber": "2",
             "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "//8="}}
    assert face.decode(orjson.dumps(media)) == CallerAudio("//8=")  # without streamSid: this stream's
    assert face.decode(orjson.dumps({**media, "streamSid": SID})) == CallerAudio("//8=")
    other = face.decode(orjson.dumps({**media, "streamSid": str(uuid.uuid4())}))
    assert type(other) is ProtocolViolation and other.kind == "unknown_stream"  # another stream: refused
    assert face.decode(b'{"event":"mark","streamSid":"' + SID.encode() + b'","mark":{"name":"m1"}}') == MarkPlayed("m1")
    assert face.decode(b'{"event":"mark","mark":{"name":"m2"}}') == MarkPlayed("m2")
    bad = face.decode(orjson.dumps({**media, "media": {}}))
    assert type(bad) is ProtocolViolation and bad.kind == "invalid_media"
    assert face.decode(b'{"event":"stop","sequenceNumber":"999"}') == StreamStop()


def test_media_before_start_is_still_refused():
    event = SignalWireStream().decode(b'{"event":"media","media":{"payload":"//8="}}')
    assert type(event) is ProtocolViolation and event.kind == "media_before_start"


START_EVENT = StreamStart(stream_id=SID, call_id=CALL, account_id=PROJECT, parameters={}, codec=PCMU)


@pytest.mark.parametrize("settings", [
    SignalWireSettings(),
    SignalWireSettings(project_id=PROJECT, api_token=Secret("t"), space_url="x.signalwire.com"),  # unsigned
    SignalWireSettings(signing_key=Secret(KEY), space_url="x.signalwire.com"),  # no credentials
])
async def test_call_control_without_credentials_is_unavailable(settings):
    carrier = SignalWireCarrier(settings)
    for action in (carrier.hang_up(START_EVENT), carrier.fall_back(START_EVENT, Fallback("Sorry.")),
                   carrier.transfer(START_EVENT, "+14155550100")):
        with pytest.raises(CallControlUnavailable, match="no SignalWire REST credentials"):
            await action
    assert carrier.rest._http is None  # no session was opened
    await carrier.close()


async def test_a_transfer_target_is_checked_before_any_request():
    carrier = SignalWireCarrier(SignalWireSettings(signing_key=Secret(KEY), space_url="x.signalwire.com",
                                                   project_id=PROJECT, api_token=Secret("t")))
    with pytest.raises(ValueError, match=r"neither an E\.164 number nor a sip: URI"):
        await carrier.transfer(START_EVENT, "555-0100")
    twilio_shaped = StreamStart(stream_id=SID, call_id="CA" + "ab" * 16, account_id=None, parameters={}, codec=PCMU)
    with pytest.raises(CallControlUnavailable, match="not a SignalWire call id"):
        await carrier.hang_up(twilio_shaped)
    assert carrier.rest._http is None
    await carrier.close()
