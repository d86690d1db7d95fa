"""Vonage's webhook side: the NCCO parsed back, signed-webhook JWTs built here with PyJWT as Vonage documents
them (HS256, signature secret, iat/jti/iss/payload_hash/api_key/application_id) and checked: valid, tampered
payload, expired, from the future, wrong secret, wrong algorithm, missing; uuid checks."""

from __future__ import annotations

import hashlib
import time
import uuid

import jwt
import orjson
import pytest
from multidict import MultiDict

from gateway.carriers.base import Fallback, WebhookRefused, WebhookRequest
from gateway.carriers.vonage import webhook
from gateway.carriers.vonage.carrier import VonageCarrier
from gateway.carriers.vonage.settings import VonageSettings
from gateway.env import Secret

SECRET = "vonage-signature-secret-for-tests"
APP = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
CALL = "63f61863-4a51-4f6b-86e1-46edebcf9356"
URL = "https://gw.example.com/voice/vonage"
NOW = 1_790_000_000.0


def fields(call: str = CALL) -> dict[str, str]:
    return {"to": "447700900000", "from": "447700900001", "uuid": call,
            "conversation_uuid": "CON-" + str(uuid.uuid4()), "region_url": "https://api-eu-1.vonage.com"}


def token(payload: bytes, *, secret: str = SECRET, iat: float | None = NOW, algorithm: str = "HS256",
          **claims: object) -> str:
    body = {"iat": None if iat is None else int(iat), "jti": str(uuid.uuid4()), "iss": "Vonage",
            "payload_hash": hashlib.sha256(payload).hexdigest(), "api_key": "a1b2c3d", **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm=algorithm)


def get(query: dict[str, str], authorization: str | None = None) -> WebhookRequest:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return WebhookRequest(method="GET", url=URL, headers=headers, form=MultiDict(), query=MultiDict(query))


def post(body: bytes, authorization: str | None = None) -> WebhookRequest:
    headers = {"authorization": authorization} if authorization is not None else {}  # any case
    return WebhookRequest(method="POST", url=URL, headers=headers, form=MultiDict(), query=MultiDict(), body=body)


def problem(request: WebhookRequest, secret: str | None = SECRET, app: str | None = None) -> str | None:
    return webhook.signature_problem(Secret(secret) if secret else None, request, now=NOW, application_id=app)


# --- signed webhooks -------------------------------------------------------------------------------


def test_a_signed_get_is_valid():
    query = fields()
    assert problem(get(query, "Bearer " + token(orjson.dumps(query)))) is None
    assert problem(get(query, "bearer " + token(orjson.dumps(query), application_id=APP)), app=APP) is None


def test_a_signed_json_post_is_valid():
    body = orjson.dumps(fields())
    assert problem(post(body, "Bearer " + token(body))) is None
    spaced = orjson.dumps(fields(), option=orjson.OPT_INDENT_2)  # hashed as received, or written compactly
    assert problem(post(spaced, "Bearer " + token(spaced))) is None
    assert problem(post(spaced, "Bearer " + token(orjson.dumps(orjson.loads(spaced))))) is None


def test_a_tampered_payload_is_refused():
    query = fields()
    signed = token(orjson.dumps(query))
    other = {**query, "uuid": str(uuid.uuid4())}
    assert problem(get(other, "Bearer " + signed)) == "payload_hash does not match the request"
    reordered = dict(reversed(list(query.items())))  # the hash covers the parameters in their order
    assert problem(get(reordered, "Bearer " + signed)) == "payload_hash does not match the request"
    body = orjson.dumps(query)
    assert problem(post(body.replace(b"447700900001", b"447700900666"), "Bearer " + token(body))) == (
        "payload_hash does not match the request")
    assert problem(get(query, "Bearer " + token(orjson.dumps(query), payload_hash=None))) == "no payload_hash claim"


def test_old_future_and_expired_tokens_are_refused():
    query, payload = fields(), orjson.dumps(fields())
    query = orjson.loads(payload)
    assert problem(get(query, "Bearer " + token(payload, iat=NOW - webhook.MAX_AGE_S + 5))) is None
    assert problem(get(query, "Bearer " + token(payload, iat=NOW - webhook.MAX_AGE_S - 5))) == "token too old"
    assert problem(get(query, "Bearer " + token(payload, iat=NOW + webhook.LEEWAY_S + 5))) == (
        "token issued in the future")
    expired = token(payload, exp=int(time.time()) - 10)  # an exp claim, when present, is honoured
    assert problem(get(query, "Bearer " + expired)) == "token expired"
    assert problem(get(query, "Bearer " + token(payload, iat=None))).startswith("invalid token")  # iat required


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # HS512 with the HS256 secret
def test_a_wrong_secret_or_algorithm_is_refused():
    query = fields()
    payload = orjson.dumps(query)
    other = "another-secret-" * 4
    assert problem(get(query, "Bearer " + token(payload, secret=other))) == "invalid token (InvalidSignatureError)"
    assert problem(get(query, "Bearer " + token(payload, algorithm="HS512"))) == (
        "invalid token (InvalidAlgorithmError)")
    unsigned = jwt.encode({"iat": int(NOW), "payload_hash": hashlib.sha256(payload).hexdigest()}, None,
                          algorithm="none")
    assert problem(get(query, "Bearer " + unsigned)).startswith("invalid token")
    assert problem(get(query, "Bearer not.a.jwt")).startswith("invalid token")


def test_a_token_of_another_application_is_refused():
    query = fields()
    signed = "Bearer " + token(orjson.dumps(query), application_id=str(uuid.uuid4()))
    assert problem(get(query, signed), app=APP) == "token of another application"
    assert problem(get(query, signed)) is None  # no application configured: not checked


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz"])
def test_a_missing_token_is_refused(authorization: str | None):
    assert problem(get(fields(), authorization)) == "no bearer token"


def test_nothing_is_checked_without_a_secret():
    assert problem(get(fields()), secret=None) is None
    assert VonageCarrier(VonageSettings()).verify_webhook(get(fields()))
    signed = VonageCarrier(VonageSettings(signature_secret=Secret(SECRET)))
    assert not signed.verify_webhook(get(fields()))
    query = fields()
    assert signed.verify_webhook(get(query, "Bearer " + token(orjson.dumps(query), iat=time.time())))


def test_a_problem_never_holds_the_secret_or_the_token():
    query = fields()
    bad = token(orjson.dumps(query), secret="x" * 40)
    reason = problem(get(query, "Bearer " + bad))
    assert reason and SECRET not in reason and bad not in reason


# --- the call --------------------------------------------------------------------------------------


def carrier(rate: int = 16000) -> VonageCarrier:
    return VonageCarrier(VonageSettings(sample_rate=rate))


def test_the_call_comes_from_the_query_of_a_get_or_the_json_of_a_post():
    f = fields()
    for request in (get(f), post(orjson.dumps(f))):
        call = carrier().inbound_call(request)
        assert call.call_id == CALL and call.from_number == "447700900001" and call.to_number == "447700900000"
        assert call.extra == {"conversation_uuid": f["conversation_uuid"], "region_url": "https://api-eu-1.vonage.com"}


@pytest.mark.parametrize("bad", ["", "CA" + "ab" * 16, "not-a-uuid", CALL + "x", "CON-" + CALL])
def test_a_call_uuid_is_required(bad: str):
    with pytest.raises(WebhookRefused, match="uuid is missing or not a Vonage call uuid") as info:
        carrier().inbound_call(get({**fields(), "uuid": bad}))
    assert info.value.label == "bad_request"
    with pytest.raises(WebhookRefused):
        carrier().inbound_call(post(b"[not json"))


def test_an_unknown_region_or_conversation_is_not_kept():
    f = {**fields(), "region_url": "https://evil.example.com", "conversation_uuid": "nope"}
    assert carrier().inbound_call(get(f)).extra == {}


# --- the NCCO --------------------------------------------------------------------------------------


def test_the_answer_connects_the_websocket_with_the_parameters_in_its_headers():
    vonage = carrier(8000)
    call = vonage.inbound_call(get(fields()))
    answer = vonage.answer(call, "wss://gw.example.com/media/vonage", {"token": "v1.9.n." + "s" * 43,
                                                                        "from": "447700900001", "to": "447700900000"})
    assert answer.content_type == "application/json"
    assert orjson.loads(answer.body) == [{"action": "connect", "endpoint": [{
        "type": "websocket", "uri": "wss://gw.example.com/media/vonage", "content-type": "audio/l16;rate=8000",
        "headers": {"call_uuid": CALL, "region_url": "https://api-eu-1.vonage.com", "token": "v1.9.n." + "s" * 43,
                    "from": "447700900001", "to": "447700900000"}}]}]
    assert "rate=16000" in carrier(16000).answer(call, "wss://x/media/vonage", {}).body


def test_the_headers_stay_within_vonages_512_bytes():
    long = "sip:" + "a" * 300 + "@example.com"
    headers = webhook.stream_headers(CALL, {"token": "t" * 90, "from": long, "to": long}, "https://api.nexmo.com")
    assert headers["from"] == long[:64] and headers["token"] == "t" * 90
    assert len(orjson.dumps(headers)) <= 512
    with pytest.raises(ValueError, match="over Vonage's 512"):
        webhook.stream_headers(CALL, {"token": "t" * 500})
    for reserved in ("event", "content-type", "call_uuid", "region_url"):
        with pytest.raises(ValueError, match="reserved"):
            webhook.stream_headers(CALL, {reserved: "x"})


def test_values_are_escaped_as_json():
    answer = carrier().answer(carrier().inbound_call(get(fields())), 'wss://x/media/vonage?a="b"',
                              {"from": '"}]},{"action":"talk'})
    (action,) = orjson.loads(answer.body)
    assert action["endpoint"][0]["headers"]["from"] == '"}]},{"action":"talk'
    assert action["endpoint"][0]["uri"] == 'wss://x/media/vonage?a="b"'


def test_busy_talks_and_the_call_ends():
    busy = carrier().busy("All lines are busy.")
    assert orjson.loads(busy.body) == [{"action": "talk", "text": "All lines are busy."}]


def test_fallback_and_transfer_nccos():
    assert webhook.fallback_ncco(Fallback("Sorry.")) == [{"action": "talk", "text": "Sorry."}]
    assert webhook.fallback_ncco(Fallback("Sorry.", "+14155550100"), "447700900000") == [
        {"action": "connect", "endpoint": [{"type": "phone", "number": "14155550100"}], "from": "447700900000"}]
    assert webhook.connect_ncco("sip:agent@pbx.example.com") == [
        {"action": "connect", "endpoint": [{"type": "sip", "uri": "sip:agent@pbx.example.com"}]}]
    assert "from" not in webhook.connect_ncco("+14155550100", "anonymous")[0]
    for bad in ("14155550100", "+0123", "tel:+14155550100", "sip:a b@c", ""):
        with pytest.raises(ValueError, match=r"neither an E\.164 number nor a sip: URI"):
            webhook.connect_ncco(bad)
