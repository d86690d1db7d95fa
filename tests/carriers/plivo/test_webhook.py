"""Plivo's webhook side: the answer XML parsed back, V3 signatures computed here with hmac over the string
Plivo documents (and its SDK builds), forged and stale ones refused, CallUUID checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
import xml.etree.ElementTree as ET

import pytest
from multidict import MultiDict

from gateway.carriers.base import WebhookRefused, WebhookRequest
from gateway.carriers.plivo import webhook
from gateway.carriers.plivo.carrier import PlivoCarrier
from gateway.carriers.plivo.settings import PlivoSettings
from gateway.env import Secret

TOKEN = "plivo-token"
URL = "https://gw.example.com/voice/plivo"
CALL = "1c5f1fb5-7d2e-4c59-a0c6-0b1b6f1dd0a3"


def sign(data: str, token: str = TOKEN) -> str:
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha256).digest()).decode()


def fields() -> dict[str, str]:
    return {"CallUUID": CALL, "From": "14155550100", "To": "14155550199", "Direction": "inbound",
            "CallStatus": "ringing", "Event": "StartApp"}


def request(method: str = "POST", url: str = URL, form: dict[str, str] | None = None,
            headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> WebhookRequest:
    return WebhookRequest(method=method, url=url, headers=headers or {}, form=MultiDict(form or {}),
                          query=query or {})


def carrier(token: str | None = TOKEN) -> PlivoCarrier:
    return PlivoCarrier(PlivoSettings(auth_token=Secret(token) if token else None))


# --- signatures ------------------------------------------------------------------------------------


def test_the_signing_string_of_a_post():
    f = fields()
    assert webhook.signing_string("POST", URL, f, "n0nce") == (
        URL + "?CallStatusringingCallUUID" + CALL + "Directioninbound" + "EventStartAppFrom14155550100To14155550199"
        + ".n0nce")
    assert webhook.signing_string("POST", URL + "?b=2&a=1", {"x": "1"}, "n") == URL + "?a=1&b=2.x1.n"
    assert webhook.signing_string("POST", URL + "?b=2&a=1", {}, "n") == URL + "?a=1&b=2.n"
    assert webhook.signing_string("POST", URL, {}, "n") == URL + ".n"
    assert webhook.signing_string("GET", URL + "?To=1&From=2", {}, "n") == URL + "?From=2&To=1.n"
    # A repeated field counts each value, sorted.
    assert webhook.signing_string("POST", URL, MultiDict([("a", "2"), ("a", "1")]), "n") == URL + "?a1a2.n"


def test_a_signed_post_is_accepted_and_forged_or_stale_ones_refused():
    f = fields()
    data = URL + "?" + "".join(k + f[k] for k in sorted(f)) + ".abc"
    good = sign(data)
    assert webhook.signature_of(TOKEN, "POST", URL, f, "abc") == good
    ok = {"X-Plivo-Signature-V3": good, "X-Plivo-Signature-V3-Nonce": "abc"}
    c = carrier()
    assert c.signs_webhooks and c.verify_webhook(request(form=f, headers=ok))
    lower = {k.lower(): v for k, v in ok.items()}  # header names are case-insensitive
    assert c.verify_webhook(request(form=f, headers=lower))
    several = {**ok, "X-Plivo-Signature-V3": "c29tZW90aGVy, " + good}  # one per account token
    assert c.verify_webhook(request(form=f, headers=several))
    refused = [
        {},
        {"X-Plivo-Signature-V3": good},  # no nonce
        {"X-Plivo-Signature-V3-Nonce": "abc"},  # no signature
        {**ok, "X-Plivo-Signature-V3-Nonce": "abd"},  # another request's nonce
        {**ok, "X-Plivo-Signature-V3": sign(data, "another-token")},
        {**ok, "X-Plivo-Signature-V3": good[:-2]},
    ]
    for headers in refused:
        assert not c.verify_webhook(request(form=f, headers=headers)), headers
    assert not c.verify_webhook(request(form={**f, "From": "14155550101"}, headers=ok))  # a field changed
    assert not c.verify_webhook(request(url=URL + "?x=1", form=f, headers=ok))  # the URL changed
    assert not c.verify_webhook(request(url="https://other.example.com/voice/plivo", form=f, headers=ok))


def test_a_signed_get_covers_its_query():
    url = URL + "?CallUUID=" + CALL + "&From=14155550100"
    sig = sign(URL + "?CallUUID=" + CALL + "&From=14155550100.n1")
    headers = {"X-Plivo-Signature-V3": sig, "X-Plivo-Signature-V3-Nonce": "n1"}
    assert carrier().verify_webhook(request("GET", url, headers=headers, query={"CallUUID": CALL}))
    assert not carrier().verify_webhook(request("GET", url + "1", headers=headers))


def test_unsigned_requests_pass_when_no_token_is_set():
    assert carrier(None).verify_webhook(request(form=fields()))
    assert not carrier(None).signs_webhooks


# --- ids -------------------------------------------------------------------------------------------


def test_the_call_is_read_from_the_form():
    call = carrier().inbound_call(request(form=fields()))
    assert (call.call_id, call.from_number, call.to_number, call.direction) == (
        CALL, "14155550100", "14155550199", "inbound")
    assert call.extra == {"CallStatus": "ringing", "Event": "StartApp"}
    got = carrier().inbound_call(request("GET", query={"CallUUID": CALL.upper()}))
    assert got.call_id == CALL.upper()


@pytest.mark.parametrize("value", ["", "CA" + "ab" * 16, CALL + "0", CALL.replace("-", ""), "../" + CALL])
def test_a_call_uuid_that_is_not_a_uuid_is_refused(value: str):
    with pytest.raises(WebhookRefused, match="CallUUID") as info:
        carrier().inbound_call(request(form={**fields(), "CallUUID": value}))
    assert info.value.label == "bad_request"


def test_a_missing_call_uuid_is_refused():
    with pytest.raises(WebhookRefused):
        carrier().inbound_call(request(form={"From": "1"}))
    with pytest.raises(WebhookRefused):
        carrier().inbound_call(request("PUT", form=fields()))


# --- the answer ------------------------------------------------------------------------------------


def test_the_answer_is_a_bidirectional_mulaw_stream_holding_the_call():
    token = "v1.1767225600.AbC-dEf_gh12.s1g-n4tur3_"
    answer = carrier().answer(carrier().inbound_call(request(form=fields())), "wss://gw.example.com/media/plivo",
                              {"token": token, "from": "14155550100", "to": "x" * 300})
    assert answer.content_type == "application/xml"
    assert answer.body.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(answer.body)
    assert root.tag == "Response" and [child.tag for child in root] == ["Stream"]
    stream = root[0]
    assert stream.text == "wss://gw.example.com/media/plivo"
    assert stream.get("bidirectional") == "true" and stream.get("keepCallAlive") == "true"
    assert stream.get("contentType") == "audio/x-mulaw;rate=8000" and stream.get("audioTrack") == "inbound"
    extra = stream.get("extraHeaders") or ""
    assert len(extra) <= 512 and all(c.isalnum() or c in "=," for c in extra)  # Plivo's character set
    params = webhook.decode_extra_headers(extra)
    assert params == {"token": token, "from": "14155550100", "to": "x" * 40}


def test_extra_headers_are_decoded_with_either_separator():
    assert webhook.decode_extra_headers("a=6869;b=7468657265") == {"a": "hi", "b": "there"}
    assert webhook.decode_extra_headers("a=6869,b=raw.value,junk,=x") == {"a": "hi", "b": "raw.value"}
    assert webhook.decode_extra_headers("a=ff") == {"a": "ff"}  # not UTF-8: kept as it came
    assert webhook.decode_extra_headers("") == {}


def test_parameters_that_plivo_would_refuse_are_not_written():
    with pytest.raises(ValueError, match="letters and digits"):
        webhook.answer_xml("wss://x/media/plivo", {"bad-name": "1"})
    with pytest.raises(ValueError, match="512"):
        webhook.answer_xml("wss://x/media/plivo", {"token": "t" * 300})


def test_values_are_escaped_and_busy_speaks_then_hangs_up():
    body = webhook.answer_xml('wss://x/media/plivo?a=1&b="2"', {})
    assert ET.fromstring(body)[0].text == 'wss://x/media/plivo?a=1&b="2"'
    busy = carrier().busy("Busy <now> & later")
    root = ET.fromstring(busy.body)
    assert [c.tag for c in root] == ["Speak", "Hangup"] and root.findtext("Speak") == "Busy <now> & later"
    assert uuid.UUID(CALL)
