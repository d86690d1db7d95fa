"""Plivo's call control against a loopback fake of the Call API: DELETE (hang up) and POST (transfer to
aleg_url) on /v1/Account/{auth_id}/Call/{call_uuid}/, Basic auth auth_id:auth_token checked."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from gateway.carriers.base import CallControlUnavailable, ControlDocument, Fallback
from gateway.carriers.plivo.carrier import PlivoCarrier
from gateway.carriers.plivo.rest import PlivoRest, PlivoRestError
from gateway.carriers.plivo.settings import PlivoSettings
from gateway.core.codec import PCMU
from gateway.core.events import StreamStart
from gateway.env import Secret
from gateway.http.control import ControlLinks

AUTH_ID = "MAXXXXXXXXXXXXXXXXXX"
TOKEN = "plivo-auth-token"
CALL = "55309cee-821d-11e6-9825-0b4c8a6f0a5b"
START = StreamStart(stream_id="20170ada-f610-433b-8758-c02a2aab3662", call_id=CALL, account_id=AUTH_ID,
                    parameters={}, codec=PCMU)


@dataclass
class FakePlivo:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 0  # 0: Plivo's own answer

    async def call(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()
        auth_ok = request.headers.get("Authorization") == expected
        body = await request.json() if request.can_read_body else None
        self.requests.append({"method": request.method, "path": request.path, "auth_ok": auth_ok, "body": body})
        if not auth_ok:
            return web.json_response({"error": "authentication failed"}, status=401)
        if self.status:
            return web.json_response({"error": "call not found"}, status=self.status)
        if request.method == "DELETE":
            return web.Response(status=204)
        return web.json_response({"message": "call transferred", "api_id": "x"}, status=202)


@pytest.fixture
async def fake() -> AsyncIterator[FakePlivo]:
    state = FakePlivo()
    app = web.Application()
    app.router.add_route("*", "/v1/Account/{auth_id}/Call/{call}/", state.call)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


def settings(fake: FakePlivo, token: str = TOKEN, auth_id: str | None = AUTH_ID) -> PlivoSettings:
    return PlivoSettings(auth_id=auth_id, auth_token=Secret(token), api_base_url=fake.url)


async def test_hang_up_deletes_the_call(fake: FakePlivo):
    carrier = PlivoCarrier(settings(fake))
    try:
        await carrier.hang_up(START)
    finally:
        await carrier.close()
    assert fake.requests == [{"method": "DELETE", "path": f"/v1/Account/{AUTH_ID}/Call/{CALL}/", "auth_ok": True,
                              "body": None}]


async def test_transfer_posts_the_aleg_url(fake: FakePlivo):
    rest = PlivoRest(settings(fake))
    try:
        await rest.transfer(CALL, "https://gw.example.com/plivo/fallback.xml")
        with pytest.raises(ValueError):
            await rest.transfer(CALL, "<Response/>")
    finally:
        await rest.close()
    (req,) = fake.requests
    assert req["method"] == "POST" and req["auth_ok"]
    assert req["body"] == {"legs": "aleg", "aleg_url": "https://gw.example.com/plivo/fallback.xml",
                           "aleg_method": "POST"}


async def test_error_answers_raise_without_the_token(fake: FakePlivo):
    rest = PlivoRest(settings(fake, token="wrong-token"))
    try:
        with pytest.raises(PlivoRestError) as info:
            await rest.hang_up(CALL)
        assert info.value.status == 401 and "wrong-token" not in str(info.value)
        fake.status = 404
        rest.settings = settings(fake)
        with pytest.raises(PlivoRestError, match="404"):
            await rest.hang_up(CALL)
    finally:
        await rest.close()


async def test_nothing_is_sent_without_credentials_or_for_a_bad_id(fake: FakePlivo):
    for s in (PlivoSettings(api_base_url=fake.url), settings(fake, auth_id=None),
              PlivoSettings(auth_id=AUTH_ID, api_base_url=fake.url)):
        with pytest.raises(CallControlUnavailable, match="PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN"):
            await PlivoRest(s).hang_up(CALL)
    rest = PlivoRest(settings(fake))
    for bad in ("CA" + "ab" * 16, "../" + CALL, ""):
        with pytest.raises(CallControlUnavailable, match="CallUUID"):
            await rest.hang_up(bad)
    assert fake.requests == []


async def test_fallback_and_transfer_need_a_public_url(fake: FakePlivo):
    carrier = PlivoCarrier(settings(fake))
    with pytest.raises(CallControlUnavailable, match="PUBLIC_URL"):
        await carrier.fall_back(START, Fallback("Sorry", number="+14155550100"))
    with pytest.raises(CallControlUnavailable, match="PUBLIC_URL"):
        await carrier.transfer(START, "+14155550100")
    await carrier.close()
    assert fake.requests == []
    assert carrier.verify_handshake("wss://gw/media/plivo", {})


async def test_fallback_and_transfer_move_the_call_to_a_control_document(fake: FakePlivo):
    links = ControlLinks(Secret("s" * 32), "https://gw.example.com")
    carrier = PlivoCarrier(settings(fake))
    carrier.document_url = links.url_for("plivo")
    try:
        await carrier.fall_back(START, Fallback("Sorry"))
        await carrier.transfer(START, "sip:desk@pbx.example.com")
    finally:
        await carrier.close()
    documents = []
    for request in fake.requests:
        body = request["body"]
        assert request["method"] == "POST" and request["auth_ok"]
        assert body["legs"] == "aleg" and body["aleg_method"] == "POST"
        prefix = "https://gw.example.com/voice/plivo/control/"
        assert body["aleg_url"].startswith(prefix)
        documents.append(links.read(body["aleg_url"].removeprefix(prefix)))
    assert documents == [ControlDocument("fallback", CALL),
                         ControlDocument("transfer", CALL, "sip:desk@pbx.example.com")]
    # No URL is minted for a call we could not act on.
    carrier = PlivoCarrier(PlivoSettings(api_base_url=fake.url))
    carrier.document_url = links.url_for("plivo")
    with pytest.raises(CallControlUnavailable, match="PLIVO_AUTH_ID"):
        await carrier.transfer(START, "+14155550100")
    assert len(fake.requests) == 2


def test_control_documents_are_plivo_xml():
    carrier = PlivoCarrier(PlivoSettings())
    apology = ET.fromstring(carrier.control_document(ControlDocument("fallback", CALL), Fallback("Sorry")).body)
    assert [(e.tag, e.text) for e in apology] == [("Speak", "Sorry"), ("Hangup", None)]
    dial = ET.fromstring(carrier.control_document(ControlDocument("fallback", CALL),
                                                  Fallback("One moment", number="+14155550100")).body)
    assert [(e.tag, e.text) for e in dial] == [("Speak", "One moment"), ("Dial", None)]
    assert [(e.tag, e.text) for e in dial.find("Dial")] == [("Number", "+14155550100")]
    for target, tag in (("+442071838750", "Number"), ("sip:desk@pbx.example.com", "User")):
        answer = carrier.control_document(ControlDocument("transfer", CALL, target), Fallback("Sorry"))
        assert answer.content_type == "application/xml"
        (element,) = ET.fromstring(answer.body).find("Dial")
        assert (element.tag, element.text) == (tag, target)
