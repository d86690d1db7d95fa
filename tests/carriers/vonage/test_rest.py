"""Vonage's call control against a loopback fake of the Voice API: PUT /v1/calls/{uuid} with the exact bodies
hang-up, fallback and transfer send, and PUT /v1/calls/{uuid}/dtmf with the keys send_dtmf plays, each
authenticated by an application JWT the fake verifies (RS256 with the application's public key; application_id,
iat, jti, exp)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from aiohttp import web

from gateway.carriers.base import CallControlUnavailable, Fallback
from gateway.carriers.vonage.carrier import VonageCarrier
from gateway.carriers.vonage.rest import JWT_TTL_S, VonageRest, VonageRestError, application_jwt
from gateway.carriers.vonage.settings import API_BASE_URL, VonageSettings
from gateway.core.codec import l16
from gateway.core.events import StreamStart
from gateway.env import Secret

APP = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"
CALL = "63f61863-4a51-4f6b-86e1-46edebcf9356"
DIALED = "447700900000"


def start(**parameters: str) -> StreamStart:
    return StreamStart(stream_id=CALL, call_id=CALL, account_id=None, codec=l16(24000),
                       parameters={"token": "t", "from": "447700900001", "to": DIALED, **parameters})


@dataclass
class FakeVonage:
    public_pem: str
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 0  # 0: Vonage's own answer

    async def call(self, request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            claims = jwt.decode(token, self.public_pem, algorithms=["RS256"]) if scheme == "Bearer" else None
        except jwt.InvalidTokenError:
            claims = None
        body = await request.json() if request.can_read_body else None
        self.requests.append({"method": request.method, "path": request.path, "claims": claims, "body": body,
                              "header": jwt.get_unverified_header(token) if claims else None})
        if claims is None:
            return web.json_response({"title": "Unauthorized"}, status=401)
        if self.status:
            return web.json_response({"title": "Not Found", "detail": "call  not   found"}, status=self.status)
        return web.Response(status=204)


@pytest.fixture
async def fake(public_pem: str) -> AsyncIterator[FakeVonage]:
    state = FakeVonage(public_pem)
    app = web.Application()
    app.router.add_route("*", "/v1/calls/{call}", state.call)
    app.router.add_route("*", "/v1/calls/{call}/dtmf", state.call)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


def settings(fake: FakeVonage | None, private_pem: str | None, app: str | None = APP) -> VonageSettings:
    return VonageSettings(application_id=app, private_key=Secret(private_pem) if private_pem else None,
                          api_base_url=fake.url if fake else API_BASE_URL)


def only_request(fake: FakeVonage) -> dict[str, Any]:
    (request,) = fake.requests
    assert request["method"] == "PUT" and request["path"] == f"/v1/calls/{CALL}"
    claims = request["claims"]
    assert claims is not None and claims["application_id"] == APP
    assert abs(claims["iat"] - time.time()) < 30 and claims["exp"] == claims["iat"] + JWT_TTL_S
    assert len(claims["jti"]) == 36 and request["header"] == {"alg": "RS256", "typ": "JWT"}
    return request["body"]


async def test_hang_up(fake: FakeVonage, private_pem: str):
    carrier = VonageCarrier(settings(fake, private_pem))
    try:
        await carrier.hang_up(start())
    finally:
        await carrier.close()
    assert only_request(fake) == {"action": "hangup"}


async def test_fall_back_says_the_apology(fake: FakeVonage, private_pem: str):
    carrier = VonageCarrier(settings(fake, private_pem))
    try:
        await carrier.fall_back(start(), Fallback("Sorry, try again later."))
    finally:
        await carrier.close()
    assert only_request(fake) == {"action": "transfer", "destination": {
        "type": "ncco", "ncco": [{"action": "talk", "text": "Sorry, try again later."}]}}


async def test_fall_back_dials_the_fallback_number_from_the_dialed_one(fake: FakeVonage, private_pem: str):
    carrier = VonageCarrier(settings(fake, private_pem))
    try:
        await carrier.fall_back(start(), Fallback("Sorry.", "+14155550100"))
    finally:
        await carrier.close()
    assert only_request(fake) == {"action": "transfer", "destination": {"type": "ncco", "ncco": [
        {"action": "connect", "endpoint": [{"type": "phone", "number": "14155550100"}], "from": DIALED}]}}


@pytest.mark.parametrize(("target", "endpoint"), [
    ("+442079460000", {"type": "phone", "number": "442079460000"}),
    ("sip:agent@pbx.example.com", {"type": "sip", "uri": "sip:agent@pbx.example.com"}),
])
async def test_transfer(fake: FakeVonage, private_pem: str, target: str, endpoint: dict[str, str]):
    carrier = VonageCarrier(settings(fake, private_pem))
    try:
        await carrier.transfer(start(), target)
    finally:
        await carrier.close()
    ncco = [{"action": "connect", "endpoint": [endpoint], "from": DIALED}]
    assert only_request(fake) == {"action": "transfer", "destination": {"type": "ncco", "ncco": ncco}}


async def test_a_bad_transfer_target_sends_nothing(fake: FakeVonage, private_pem: str):
    carrier = VonageCarrier(settings(fake, private_pem))
    try:
        with pytest.raises(ValueError):
            await carrier.transfer(start(), "0800 FLOWERS")
    finally:
        await carrier.close()
    assert fake.requests == []


async def test_an_error_answer_is_raised_without_secrets(fake: FakeVonage, private_pem: str):
    fake.status = 404
    rest = VonageRest(settings(fake, private_pem))
    try:
        with pytest.raises(VonageRestError) as info:
            await rest.hang_up(CALL)
    finally:
        await rest.close()
    assert info.value.status == 404 and "call not found" in str(info.value)
    assert "PRIVATE" not in str(info.value) and "Bearer" not in str(info.value)


async def test_a_key_that_is_not_the_applications_is_refused_by_vonage(fake: FakeVonage):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    rest = VonageRest(settings(fake, other))
    try:
        with pytest.raises(VonageRestError) as info:
            await rest.hang_up(CALL)
    finally:
        await rest.close()
    assert info.value.status == 401 and fake.requests[0]["claims"] is None  # the fake's check can fail


async def test_no_credentials_or_a_bad_uuid_send_nothing(fake: FakeVonage, private_pem: str):
    for s in (settings(fake, None, app=None), settings(fake, None)):
        carrier = VonageCarrier(s)
        with pytest.raises(CallControlUnavailable, match="VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY"):
            await carrier.hang_up(start())
        with pytest.raises(CallControlUnavailable):
            await carrier.fall_back(start(), Fallback("Sorry."))
        await carrier.close()
    rest = VonageRest(settings(fake, private_pem))
    for bad in ("../../v2/applications", "CA" + "a" * 32, ""):
        with pytest.raises(CallControlUnavailable, match="not a Vonage call uuid"):
            await rest.hang_up(bad)
    await rest.close()
    assert fake.requests == []


def test_the_call_is_controlled_in_its_region_unless_the_base_url_is_overridden(private_pem: str):
    default = VonageRest(settings(None, private_pem))
    assert default.base_url("https://api-us-3.vonage.com") == "https://api-us-3.vonage.com"
    assert default.base_url("https://api.nexmo.com") == "https://api.nexmo.com"
    for untrusted in ("https://evil.example.com", "http://api-us-3.vonage.com", "https://api-us-3.vonage.com.evil.io",
                      "https://api-us-3.vonage.com/v1", None, ""):
        assert default.base_url(untrusted) == API_BASE_URL
    url, authorization = default.endpoint(CALL, "https://api-eu-1.vonage.com")
    assert url == f"https://api-eu-1.vonage.com/v1/calls/{CALL}" and authorization.startswith("Bearer ey")
    overridden = VonageRest(VonageSettings(application_id=APP, private_key=Secret(private_pem),
                                           api_base_url="http://127.0.0.1:9"))
    assert overridden.base_url("https://api-us-3.vonage.com") == "http://127.0.0.1:9"


def test_the_application_jwt(private_pem: str, public_pem: str):
    token = application_jwt(settings(None, private_pem), now=1_790_000_000)
    claims = jwt.decode(token, public_pem, algorithms=["RS256"], options={"verify_exp": False})
    assert claims["application_id"] == APP and claims["iat"] == 1_790_000_000
    assert claims["exp"] == 1_790_000_000 + 15 * 60
    assert application_jwt(settings(None, private_pem)) != application_jwt(settings(None, private_pem))  # jti


async def test_send_dtmf_plays_the_keys_into_the_call(fake: FakeVonage, private_pem: str):
    carrier = VonageCarrier(settings(fake, private_pem))
    assert carrier.capabilities.send_dtmf == "call_control"
    try:
        await carrier.send_dtmf(start(), "1#")
    finally:
        await carrier.close()
    (request,) = fake.requests
    assert request["method"] == "PUT" and request["path"] == f"/v1/calls/{CALL}/dtmf"
    assert request["claims"] is not None and request["claims"]["application_id"] == APP
    assert request["body"] == {"digits": "1#"}


async def test_send_dtmf_refuses_what_is_not_a_key_before_any_request(fake: FakeVonage, private_pem: str):
    rest = VonageRest(settings(fake, private_pem))
    try:
        for bad in ("", "12x", "1,2", "p"):
            with pytest.raises(ValueError, match="digits must be 0-9"):
                await rest.send_dtmf(CALL, bad)
        fake.status = 400
        with pytest.raises(VonageRestError) as info:
            await rest.send_dtmf(CALL, "5")
    finally:
        await rest.close()
    assert info.value.status == 400 and len(fake.requests) == 1
