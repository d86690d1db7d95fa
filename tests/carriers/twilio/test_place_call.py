"""Placing a call through Twilio's REST API (Calls resource, create) with the twilio package, against the
loopback fake (which records the request as Twilio would receive it): the TwiML that connects the stream with
every parameter whole, the status callback and its events, the ring timeout, async AMD when asked; the call's
status callbacks and AMD verdicts read into the carrier-neutral CallProgress; ending a call it placed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.carriers.base import CallControlUnavailable, PlaceCall, WebhookRefused, WebhookRequest
from gateway.carriers.twilio import webhook
from gateway.carriers.twilio.carrier import TwilioCarrier
from gateway.carriers.twilio.settings import TwilioSettings
from gateway.env import Secret
from gateway.sim.twilio_api import FakeTwilioApi

ACCOUNT = "AC" + "12" * 16
TOKEN = "auth-token-123456"
STREAM = "wss://gw.example.com/media/twilio"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilioApi]:
    api = await FakeTwilioApi(auth_token=TOKEN, dial=False).start()
    yield api
    await api.stop()


def carrier(fake: FakeTwilioApi, **settings: object) -> TwilioCarrier:
    values = {"auth_token": Secret(TOKEN), "account_sid": ACCOUNT, "api_base_url": fake.url, **settings}
    return TwilioCarrier(TwilioSettings(**values))  # type: ignore[arg-type]


def request(**changes: object) -> PlaceCall:
    values = {"to": "+14155550100", "from_number": "+14155550199", "stream_url": STREAM,
              "parameters": {"token": "v1.123.abc.sig", "outbound": "out_1", "agent": "sales", "vars": '{"a":"b"}'},
              "status_url": "https://gw.example.com/status/twilio?call=out_1", "ring_timeout_s": 25, **changes}
    return PlaceCall(**values)  # type: ignore[arg-type]


async def test_place_call_sends_the_stream_twiml_the_callbacks_and_the_timeout(fake: FakeTwilioApi):
    twilio = carrier(fake)
    try:
        sid = await twilio.place_call(request())
    finally:
        await twilio.close()
    (created,) = fake.created
    form = created["form"]
    assert sid in fake.calls and sid.startswith("CA") and len(sid) == 34
    assert (created["account"], created["user"], created["password"]) == (ACCOUNT, ACCOUNT, TOKEN)
    assert (form["To"], form["From"], form["Timeout"]) == ("+14155550100", "+14155550199", "25")
    assert form["Twiml"] == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://gw.example.com/media/twilio">'
        '<Parameter name="token" value="v1.123.abc.sig" /><Parameter name="outbound" value="out_1" />'
        '<Parameter name="agent" value="sales" /><Parameter name="vars" value="{&quot;a&quot;:&quot;b&quot;}" />'
        '</Stream></Connect></Response>')
    assert form["StatusCallback"] == "https://gw.example.com/status/twilio?call=out_1"
    assert form["StatusCallbackMethod"] == "POST"
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert not {"MachineDetection", "AsyncAmd", "AsyncAmdStatusCallback"} & set(form)


async def test_place_call_asks_for_async_amd_to_the_end_of_the_greeting(fake: FakeTwilioApi):
    twilio = carrier(fake)
    try:
        await twilio.place_call(request(machine_detection=True, amd_url="https://gw.example.com/status/twilio/amd"))
    finally:
        await twilio.close()
    form = fake.created[0]["form"]
    assert (form["MachineDetection"], form["AsyncAmd"]) == ("DetectMessageEnd", "true")
    assert form["AsyncAmdStatusCallback"] == "https://gw.example.com/status/twilio/amd"
    assert form["AsyncAmdStatusCallbackMethod"] == "POST"


async def test_place_call_without_credentials_is_refused_before_any_request(fake: FakeTwilioApi):
    twilio = carrier(fake, account_sid=None)
    with pytest.raises(CallControlUnavailable, match="TWILIO_AUTH_TOKEN and TWILIO_ACCOUNT_SID"):
        await twilio.place_call(request())
    await twilio.close()
    assert fake.created == []


async def test_a_parameter_twilio_would_refuse_is_refused_before_any_request(fake: FakeTwilioApi):
    twilio = carrier(fake)
    with pytest.raises(ValueError, match="vars"):
        await twilio.place_call(request(parameters={"token": "t", "vars": "x" * 500}))
    await twilio.close()
    assert fake.created == []


async def test_twilio_refusing_the_call_raises_its_error(fake: FakeTwilioApi):
    twilio = carrier(fake, auth_token=Secret("wrong-token-123"))
    with pytest.raises(Exception) as raised:
        await twilio.place_call(request())
    await twilio.close()
    assert raised.value.status == 401 and raised.value.code == 20003  # type: ignore[attr-defined]
    assert "wrong-token" not in str(raised.value)


@pytest.mark.parametrize(("answered", "status"), [(False, "canceled"), (True, "completed")])
async def test_cancel_call_cancels_a_ringing_call_or_completes_an_answered_one(fake: FakeTwilioApi, answered, status):
    twilio = carrier(fake)
    try:
        await twilio.cancel_call("CA" + "ab" * 16, answered=answered)
    finally:
        await twilio.close()
    (update,) = fake.requests
    assert update["status"] == status and update["twiml"] is None


def progress_of(fields: dict[str, str]):
    return TwilioCarrier(TwilioSettings()).call_progress(
        WebhookRequest(method="POST", url="https://gw.example.com/status/twilio", headers={}, form=fields, query={}))


def test_status_callbacks_and_amd_verdicts_are_read_into_call_progress():
    done = progress_of({"CallSid": "CA1", "CallStatus": "completed", "CallDuration": "42", "SequenceNumber": "3"})
    assert (done.call_id, done.status, done.duration_s, done.sequence, done.answered_by) == ("CA1", "completed", 42,
                                                                                             3, None)
    assert progress_of({"CallSid": "CA1", "CallStatus": "no-answer"}).status == "no-answer"
    for raw, kind in [("human", "human"), ("machine_end_beep", "machine"), ("machine_end_silence", "machine"),
                      ("machine_end_other", "machine"), ("machine_start", "machine"), ("fax", "machine"),
                      ("unknown", "unknown"), ("something_new", "unknown")]:
        amd = progress_of({"CallSid": "CA1", "AnsweredBy": raw})
        assert (amd.answered_by, amd.answered_by_detail, amd.status) == (kind, raw, None)
    with pytest.raises(WebhookRefused, match="CallSid"):
        progress_of({"CallStatus": "completed"})
    with pytest.raises(WebhookRefused, match="CallStatus"):
        progress_of({"CallSid": "CA1", "CallStatus": "exploded"})
    assert progress_of({"CallSid": "CA1", "CallDuration": "-1"}).duration_s is None


def test_connect_twiml_keeps_every_value_whole():
    long = "v" * 400
    assert f'value="{long}"' in webhook.connect_twiml(STREAM, {"vars": long})
