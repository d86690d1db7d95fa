"""Telnyx's webhook side: Ed25519 signatures over `timestamp|body` made here with a generated key pair
(valid, tampered, stale, future, wrong key, missing or malformed headers), the ids, and the TeXML answers
parsed back with ElementTree."""

from __future__ import annotations

import base64
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from multidict import MultiDict

from gateway.carriers.base import Fallback, WebhookRefused, WebhookRequest
from gateway.carriers.telnyx import webhook
from gateway.carriers.telnyx.carrier import TelnyxCarrier
from gateway.carriers.telnyx.settings import load
from gateway.core.codec import PCMA, PCMU, l16
from gateway.env import Env

KEY = Ed25519PrivateKey.generate()
PUBLIC = base64.b64encode(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
URL = "https://gw.example.com/voice/telnyx"
CALL = "v3:9X2vxPDFY2RHSJ1EdMS0RHRksMTg7ldNxdjWbVr9zBjbGjGsSe-aiQ"  # TX-W's example
ACCOUNT = "f5586561-8ff0-4291-a51b-c7dfe4139ff9"


def fields(**changes: str) -> dict[str, str]:
    return {"AccountSid": ACCOUNT, "CallSid": CALL, "CallSidLegacy": CALL, "From": "+13122010091",
            "To": "+13122010090", "ConnectionId": "1568109700606592442", "ApiVersion": "2010-04-01",
            "CallStatus": "ringing", **changes}


def sign(body: bytes, timestamp: str, key: Ed25519PrivateKey = KEY) -> str:
    return base64.b64encode(key.sign(timestamp.encode() + b"|" + body)).decode()


def request(method: str = "POST", form: dict[str, str] | None = None, headers: dict[str, str] | None = None,
            body: bytes | None = None, query: dict[str, str] | None = None) -> WebhookRequest:
    form = fields() if form is None else form
    raw = urlencode(form).encode() if body is None else body
    return WebhookRequest(method=method, url=URL, headers=headers or {},
                          form=MultiDict(form) if method == "POST" else MultiDict(),
                          query=query or {}, body=raw if method == "POST" else b"")


def signed(form: dict[str, str] | None = None, at: float | None = None) -> WebhookRequest:
    body = urlencode(fields() if form is None else form).encode()
    timestamp = str(int(time.time() if at is None else at))
    return request(form=form, body=body, headers={"telnyx-timestamp": timestamp,
                                                  "telnyx-signature-ed25519": sign(body, timestamp)})


def carrier(public: str | None = PUBLIC, **env: str) -> TelnyxCarrier:
    return TelnyxCarrier(load(Env({**({"TELNYX_PUBLIC_KEY": public} if public else {}), **env})))


# --- signatures ------------------------------------------------------------------------------------


def test_a_signed_webhook_is_accepted():
    c = carrier()
    assert c.signs_webhooks and c.verify_webhook(signed())
    req = signed()
    title = {k.title(): v for k, v in req.headers.items()}  # header names are case-insensitive
    assert c.verify_webhook(WebhookRequest(req.method, req.url, title, req.form, req.query, req.body))


def test_tampered_forged_and_malformed_ones_are_refused():
    c = carrier()
    good = signed()
    ts, sig = good.headers["telnyx-timestamp"], good.headers["telnyx-signature-ed25519"]
    body = good.body
    refused = [
        request(body=body.replace(b"ringing", b"in-progress"), headers=dict(good.headers)),  # body changed
        request(body=body + b"&x=1", headers=dict(good.headers)),
        request(body=body, headers={"telnyx-timestamp": str(int(ts) + 1), "telnyx-signature-ed25519": sig}),
        request(body=body, headers={"telnyx-timestamp": ts,
                                    "telnyx-signature-ed25519": sign(body, ts, Ed25519PrivateKey.generate())}),
        request(body=body, headers={"telnyx-timestamp": ts}),  # no signature
        request(body=body, headers={"telnyx-signature-ed25519": sig}),  # no timestamp
        request(body=body, headers={}),
        request(body=body, headers={"telnyx-timestamp": ts, "telnyx-signature-ed25519": "not base64!"}),
        request(body=body, headers={"telnyx-timestamp": ts, "telnyx-signature-ed25519": sig[:-8]}),
        request(body=body, headers={"telnyx-timestamp": ts,
                                    "telnyx-signature-ed25519": base64.b64encode(b"\0" * 64).decode()}),
        request(body=body, headers={"telnyx-timestamp": ts + ".5", "telnyx-signature-ed25519": sig}),
        request(body=body, headers={"telnyx-timestamp": "-" + ts, "telnyx-signature-ed25519": sig}),
    ]
    for req in refused:
        assert not c.verify_webhook(req), req.headers


def test_the_replay_window_applies_both_ways():
    c = carrier()
    now = time.time()
    assert c.verify_webhook(signed(at=now - 290)) and c.verify_webhook(signed(at=now + 290))
    assert not c.verify_webhook(signed(at=now - 310))  # stale: a replay
    assert not c.verify_webhook(signed(at=now + 310))  # from the future
    short = carrier(TELNYX_WEBHOOK_MAX_AGE_S="30")
    assert short.verify_webhook(signed(at=now - 20)) and not short.verify_webhook(signed(at=now - 40))
    assert webhook.signature_valid(short.settings.verify_key, signed(at=1000), now=1010, max_age_s=30)
    assert not webhook.signature_valid(short.settings.verify_key, signed(at=1000), now=1031, max_age_s=30)


def test_unsigned_requests_pass_when_no_public_key_is_set():
    assert carrier(None).verify_webhook(request())
    assert not carrier(None).signs_webhooks


# --- ids -------------------------------------------------------------------------------------------


def test_the_call_is_read_from_the_form_or_the_query():
    call = carrier().inbound_call(request())
    assert (call.call_id, call.account_id, call.from_number, call.to_number) == (
        CALL, ACCOUNT, "+13122010091", "+13122010090")
    assert call.extra == {"CallStatus": "ringing", "ConnectionId": "1568109700606592442"}
    got = carrier(None).inbound_call(request("GET", query=fields(CallSid="v2:" + CALL[3:])))
    assert got.call_id == "v2:" + CALL[3:] and got.account_id == ACCOUNT


def test_a_get_is_refused_while_signatures_are_checked():
    with pytest.raises(WebhookRefused, match="POST") as info:
        carrier().inbound_call(request("GET", query=fields()))
    assert info.value.label == "bad_request"


@pytest.mark.parametrize("value", ["", "fcc47bc6-e428-11ed-ad79-02420aef00b4", "CA" + "ab" * 16, "v3:short",
                                   "v4:" + CALL[3:], CALL + "/../x", CALL + " ", "v3:" + "A" * 300])
def test_a_call_sid_that_is_not_a_call_control_id_is_refused(value: str):
    with pytest.raises(WebhookRefused, match="CallSid") as info:
        carrier().inbound_call(request(form=fields(CallSid=value)))
    assert info.value.label == "bad_request"


@pytest.mark.parametrize("value", ["", "not-a-uuid", ACCOUNT + "0", "AC" + "ab" * 16])
def test_an_account_sid_that_is_not_a_uuid_is_refused(value: str):
    with pytest.raises(WebhookRefused, match="AccountSid"):
        carrier().inbound_call(request(form=fields(AccountSid=value)))


def test_missing_ids_are_refused():
    with pytest.raises(WebhookRefused):
        carrier().inbound_call(request(form={"From": "+1"}))
    with pytest.raises(WebhookRefused):
        carrier(None).inbound_call(request("PUT"))


# --- TeXML -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("codec", "name"), [("PCMU", "PCMU"), ("PCMA", "PCMA")])
def test_the_answer_is_a_bidirectional_rtp_stream_holding_the_call(codec: str, name: str):
    c = carrier(TELNYX_CODEC=codec)
    token = "v1.1767225600.AbC-dEf_gh12.s1g-n4tur3_" + "x" * 250
    answer = c.answer(c.inbound_call(request()), "wss://gw.example.com/media/telnyx",
                      {"token": token, "from": "+13122010091", "to": "x" * 300})
    assert answer.content_type == "text/xml"
    assert answer.body.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(answer.body)
    assert root.tag == "Response" and [child.tag for child in root] == ["Connect"]
    (stream,) = list(root[0])
    assert stream.tag == "Stream" and stream.attrib == {
        "url": "wss://gw.example.com/media/telnyx", "track": "inbound_track", "codec": name,
        "bidirectionalMode": "rtp", "bidirectionalCodec": name, "bidirectionalSamplingRate": "8000"}
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"token": token, "from": "+13122010091", "to": "x" * 200}  # the token whole
    assert [p.tag for p in stream] == ["Parameter"] * 3


def test_values_are_escaped():
    body = webhook.answer_texml('wss://x/media/telnyx?a=1&b="2"', {"from": '<"&>'}, PCMU)
    stream = ET.fromstring(body).find("./Connect/Stream")
    assert stream is not None and stream.get("url") == 'wss://x/media/telnyx?a=1&b="2"'
    assert stream.find("Parameter").get("value") == '<"&>'  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        webhook.answer_texml("wss://x", {}, l16(16000))
    assert webhook.texml_codec(PCMA) == "PCMA"


def test_busy_fallback_transfer_and_hangup_documents():
    busy = ET.fromstring(carrier().busy("Busy <now> & later").body)
    assert [c.tag for c in busy] == ["Say", "Hangup"] and busy.findtext("Say") == "Busy <now> & later"
    sorry = ET.fromstring(webhook.fallback_texml(Fallback("Sorry & goodbye")))
    assert [c.tag for c in sorry] == ["Say", "Hangup"] and sorry.findtext("Say") == "Sorry & goodbye"
    dial = ET.fromstring(webhook.fallback_texml(Fallback("Sorry", number="+14155550100")))
    assert [c.tag for c in dial] == ["Dial"] and dial.findtext("./Dial/Number") == "+14155550100"
    sip = ET.fromstring(webhook.transfer_texml("sip:agent@pbx.example.com"))
    assert sip.findtext("./Dial/Sip") == "sip:agent@pbx.example.com" and sip.find("./Dial/Number") is None
    assert ET.fromstring(webhook.transfer_texml("+442071838750")).findtext("./Dial/Number") == "+442071838750"
    assert [c.tag for c in ET.fromstring(webhook.hangup_texml())] == ["Hangup"]
    for bad in ("4155550100", "+1 415 555", "tel:+14155550100", "sip:a b@c", "<Dial/>", ""):
        with pytest.raises(ValueError):
            webhook.transfer_texml(bad)
