"""SignalWire's REST call control against a loopback fake of the documented endpoint:
POST /api/laml/2010-04-01/Accounts/{ProjectID}/Calls/{CallSid}, form-encoded, Basic auth ProjectID:APIToken."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.carriers.base import CallControlUnavailable, Fallback
from gateway.carriers.signalwire.carrier import SignalWireCarrier
from gateway.carriers.signalwire.rest import SignalWireRest, SignalWireRestError
from gateway.carriers.signalwire.settings import SignalWireSettings
from gateway.core.codec import PCMU
from gateway.core.events import StreamStart
from gateway.env import Secret

PROJECT = "b08dacad-2f6c-4de1-93d6-cc732e0c69c5"
TOKEN = "PT_api_token_for_tests"
CALL = "76ac3c36-56da-4a3e-a0d6-b5f8df6da9ad"
START = StreamStart(stream_id="7d56cc11-536d-4a45-b4fb-ed3d55be843b", call_id=CALL, account_id=PROJECT,
                    parameters={}, codec=PCMU)


@dataclass
class FakeSignalWire:
    """The one endpoint the gateway uses; answers like the Compatibility API (JSON call resource)."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0

    async def update(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{PROJECT}:{TOKEN}".encode()).decode()
        form = dict(await request.post())
        self.requests.append({"path": request.path, "auth_ok": auth == expected, "form": form,
                              "content_type": request.content_type, "account": request.match_info["account"],
                              "call": request.match_info["call"]})
        if auth != expected:
            return web.json_response({"code": 401, "message": "Unauthorized"}, status=401)
        if request.match_info["account"] != PROJECT:
            return web.json_response({"code": 404, "message": "Not found"}, status=404)
        await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.json_response({"code": self.status, "message": "Call is not in-progress"}, status=self.status)
        return web.json_response({"sid": request.match_info["call"], "account_sid": PROJECT,
                                  "status": form.get("Status", "in-progress")})


@pytest.fixture
async def fake() -> AsyncIterator[FakeSignalWire]:
    state = FakeSignalWire()
    app = web.Application()
    app.router.add_post("/api/laml/2010-04-01/Accounts/{account}/Calls/{call}", state.update)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


def settings(fake: FakeSignalWire, token: str = TOKEN) -> SignalWireSettings:
    return SignalWireSettings(signing_key=Secret("PSK_key"), space_url="example.signalwire.com", project_id=PROJECT,
                              api_token=Secret(token), api_base_url=fake.url)


def test_the_endpoint_is_the_space_url_by_default():
    rest = SignalWireRest(SignalWireSettings(signing_key=Secret("k"), space_url="example.signalwire.com",
                                             project_id=PROJECT, api_token=Secret(TOKEN)))
    url, auth = rest.endpoint(CALL) or ("", "")
    assert url == f"https://example.signalwire.com/api/laml/2010-04-01/Accounts/{PROJECT}/Calls/{CALL}"
    assert base64.b64decode(auth.removeprefix("Basic ")).decode() == f"{PROJECT}:{TOKEN}"


async def test_hang_up_sets_the_status_completed(fake: FakeSignalWire):
    carrier = SignalWireCarrier(settings(fake))
    await carrier.hang_up(START)
    await carrier.close()
    [req] = fake.requests
    assert req["auth_ok"] and req["content_type"] == "application/x-www-form-urlencoded"
    assert (req["account"], req["call"]) == (PROJECT, CALL)
    assert req["form"] == {"Status": "completed"}


async def test_fall_back_and_transfer_send_inline_cxml(fake: FakeSignalWire):
    carrier = SignalWireCarrier(settings(fake))
    await carrier.fall_back(START, Fallback("Sorry, try again later."))
    await carrier.fall_back(START, Fallback("unused", number="+14155550100"))
    await carrier.transfer(START, "sip:agent@pbx.example.com")
    await carrier.close()
    assert all(r["auth_ok"] and r["call"] == CALL for r in fake.requests)
    sent = [r["form"]["Twiml"] for r in fake.requests]
    assert "<Say>Sorry, try again later.</Say><Hangup />" in sent[0]
    assert "<Dial>+14155550100</Dial>" in sent[1]
    assert "<Sip>sip:agent@pbx.example.com</Sip>" in sent[2]
    assert all(len(t) <= 4000 for t in sent)  # the inline document's documented bound


async def test_one_session_for_the_process(fake: FakeSignalWire):
    rest = SignalWireRest(settings(fake))
    await rest.update(CALL, status="completed")
    session = rest._http
    await rest.update(CALL, twiml="<Response><Hangup/></Response>")
    assert rest._http is session and session is not None
    await rest.close()
    assert rest._http is None and session.closed
    await rest.close()  # idempotent


async def test_an_error_answer_is_raised_without_the_token(fake: FakeSignalWire):
    fake.status = 422
    rest = SignalWireRest(settings(fake))
    with pytest.raises(SignalWireRestError, match="HTTP 422") as info:
        await rest.update(CALL, status="completed")
    assert info.value.status == 422 and TOKEN not in str(info.value)
    await rest.close()


async def test_a_wrong_token_is_a_401(fake: FakeSignalWire):
    rest = SignalWireRest(settings(fake, token="not-the-token"))
    with pytest.raises(SignalWireRestError, match="HTTP 401"):
        await rest.update(CALL, status="completed")
    assert fake.requests[0]["auth_ok"] is False
    await rest.close()


async def test_a_slow_answer_times_out(fake: FakeSignalWire):
    fake.delay_s = 1.0
    rest = SignalWireRest(settings(fake), timeout_s=0.2)
    with pytest.raises((TimeoutError, aiohttp.ServerTimeoutError)):
        await rest.update(CALL, status="completed")
    await rest.close()


async def test_nothing_is_sent_for_an_id_that_is_not_a_uuid(fake: FakeSignalWire):
    rest = SignalWireRest(settings(fake))
    for call in ("CA" + "ab" * 16, "../../Accounts", CALL + "/Recordings"):
        with pytest.raises(CallControlUnavailable, match="not a SignalWire call id"):
            await rest.update(call, status="completed")
    assert fake.requests == [] and rest._http is None
