"""Telnyx's call control against a loopback fake of the TeXML REST API's "Update call" (TX-U):
POST /v2/texml/Accounts/{account_sid}/Calls/{call_sid}, form-encoded, Authorization: Bearer <API key>."""

from __future__ import annotations

import asyncio
import base64
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.carriers.base import CallControlUnavailable, Fallback
from gateway.carriers.telnyx.carrier import TelnyxCarrier
from gateway.carriers.telnyx.rest import TelnyxRest, TelnyxRestError
from gateway.carriers.telnyx.settings import TelnyxSettings, load
from gateway.core.codec import PCMU
from gateway.core.events import StreamStart
from gateway.env import Env

API_KEY = "KEY0199A1B2C3D4_secretpart"
ACCOUNT = "61bf923e-5e4d-4595-a110-56190ea18a1b"
CALL = "v3:KBnLO0ZK3DhKM5s7bE9VluaSmKsOchKht_fUYvxcp8ysbmzCCtpkmA"  # TX-U's example sid
PUBLIC = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw,
                                                                                  PublicFormat.Raw)).decode()
START = StreamStart(stream_id="32DE0DEA-53CB-4B21-89A4-9E1819C043BC", call_id=CALL, account_id=ACCOUNT,
                    parameters={}, codec=PCMU)


@dataclass
class FakeTelnyx:
    """The one endpoint the gateway uses; answers like the TeXML API (a JSON call resource, or errors)."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0
    echo_key: bool = False  # an error body that quotes the Authorization header (it must not leak)

    async def update(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        form = dict(await request.post())
        self.requests.append({"method": request.method, "path": request.raw_path,
                              "auth_ok": auth == f"Bearer {API_KEY}", "form": form,
                              "content_type": request.content_type,
                              "account": request.match_info["account"], "call": request.match_info["call"]})
        if auth != f"Bearer {API_KEY}":
            return web.json_response({"errors": [{"code": "10009", "title": "Authentication failed",
                                                  "detail": auth if self.echo_key else "bad key"}]}, status=401)
        await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.json_response({"errors": [{"code": "90018", "title": "Call has already ended",
                                                  "detail": auth if self.echo_key else ""}]}, status=self.status)
        return web.json_response({"account_sid": request.match_info["account"], "sid": request.match_info["call"],
                                  "status": "completed" if form.get("Status") else "in-progress"})


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelnyx]:
    state = FakeTelnyx()
    app = web.Application()
    app.router.add_post("/v2/texml/Accounts/{account}/Calls/{call}", state.update)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


def settings(fake: FakeTelnyx, api_key: str | None = API_KEY, public: str | None = PUBLIC) -> TelnyxSettings:
    env = {"TELNYX_API_BASE_URL": fake.url, **({"TELNYX_API_KEY": api_key} if api_key else {}),
           **({"TELNYX_PUBLIC_KEY": public} if public else {})}
    return load(Env(env))


def test_the_endpoint_is_telnyx_by_default():
    rest = TelnyxRest(load(Env({"TELNYX_API_KEY": API_KEY, "TELNYX_PUBLIC_KEY": PUBLIC})))
    url, auth = rest.endpoint(CALL, ACCOUNT)
    assert url == f"https://api.telnyx.com/v2/texml/Accounts/{ACCOUNT}/Calls/{CALL}"
    assert auth == f"Bearer {API_KEY}"


async def test_hang_up_sets_the_status_completed(fake: FakeTelnyx):
    carrier = TelnyxCarrier(settings(fake))
    await carrier.hang_up(START)
    await carrier.close()
    [req] = fake.requests
    assert req["method"] == "POST" and req["auth_ok"] and req["content_type"] == "application/x-www-form-urlencoded"
    assert req["path"] == f"/v2/texml/Accounts/{ACCOUNT}/Calls/{CALL}"  # the colon of v3: as it is
    assert (req["account"], req["call"]) == (ACCOUNT, CALL)
    assert req["form"] == {"Status": "completed"}


async def test_fall_back_and_transfer_send_inline_texml(fake: FakeTelnyx):
    carrier = TelnyxCarrier(settings(fake))
    await carrier.fall_back(START, Fallback("Sorry & try again later."))
    await carrier.fall_back(START, Fallback("unused", number="+14155550100"))
    await carrier.transfer(START, "sip:agent@pbx.example.com")
    await carrier.transfer(START, "+442071838750")
    await carrier.close()
    assert all(r["auth_ok"] and r["call"] == CALL and r["account"] == ACCOUNT for r in fake.requests)
    assert all(list(r["form"]) == ["Texml"] for r in fake.requests)
    sorry, dial, sip, number = (ET.fromstring(r["form"]["Texml"]) for r in fake.requests)
    assert [c.tag for c in sorry] == ["Say", "Hangup"] and sorry.findtext("Say") == "Sorry & try again later."
    assert dial.findtext("./Dial/Number") == "+14155550100"
    assert sip.findtext("./Dial/Sip") == "sip:agent@pbx.example.com"
    assert number.findtext("./Dial/Number") == "+442071838750"


async def test_a_bad_transfer_target_sends_nothing(fake: FakeTelnyx):
    carrier = TelnyxCarrier(settings(fake))
    with pytest.raises(ValueError):
        await carrier.transfer(START, "4155550100")
    await carrier.close()
    assert fake.requests == []


async def test_one_session_for_the_process(fake: FakeTelnyx):
    rest = TelnyxRest(settings(fake))
    await rest.hang_up(CALL, ACCOUNT)
    session = rest._http
    await rest.update(CALL, ACCOUNT, texml="<Response><Hangup/></Response>")
    assert rest._http is session and session is not None
    await rest.close()
    assert rest._http is None and session.closed
    await rest.close()  # idempotent


async def test_error_answers_are_raised_without_the_key(fake: FakeTelnyx):
    fake.status, fake.echo_key = 422, True
    rest = TelnyxRest(settings(fake))
    with pytest.raises(TelnyxRestError, match="HTTP 422") as info:
        await rest.hang_up(CALL, ACCOUNT)
    assert info.value.status == 422 and "Call has already ended" in str(info.value)
    assert "secretpart" not in str(info.value)  # the fake quoted the key back: redacted
    await rest.close()
    wrong = TelnyxRest(settings(fake, api_key="KEYwrong_other"))
    with pytest.raises(TelnyxRestError, match="HTTP 401") as info:
        await wrong.hang_up(CALL, ACCOUNT)
    assert "KEYwrong_other" not in str(info.value) and fake.requests[-1]["auth_ok"] is False
    await wrong.close()


async def test_a_slow_answer_times_out(fake: FakeTelnyx):
    fake.delay_s = 1.0
    rest = TelnyxRest(settings(fake), timeout_s=0.2)
    with pytest.raises((TimeoutError, aiohttp.ServerTimeoutError)):
        await rest.hang_up(CALL, ACCOUNT)
    await rest.close()


async def test_nothing_is_sent_without_keys_or_for_ids_that_are_not_telnyx_ones(fake: FakeTelnyx):
    for s in (settings(fake, api_key=None), settings(fake, public=None), settings(fake, None, None)):
        with pytest.raises(CallControlUnavailable, match="TELNYX_API_KEY") as info:
            await TelnyxCarrier(s).hang_up(START)
        assert API_KEY not in str(info.value)
    rest = TelnyxRest(settings(fake))
    for call in ("CA" + "ab" * 16, "v3:../../Accounts/x", CALL + "/Recordings", "fcc47bc6-e428-11ed-ad79-02420aef00b4"):
        with pytest.raises(CallControlUnavailable, match="Call Control id"):
            await rest.hang_up(call, ACCOUNT)
    for account in (None, "", "../x", "MA" + "X" * 18):
        with pytest.raises(CallControlUnavailable, match="account id"):
            await rest.hang_up(CALL, account)
    assert fake.requests == [] and rest._http is None
    carrier = TelnyxCarrier(settings(fake))
    with pytest.raises(CallControlUnavailable):
        await carrier.fall_back(StreamStart(START.stream_id, CALL, None, {}, PCMU), Fallback("Sorry"))
    assert carrier.verify_handshake("wss://gw/media/telnyx", {}) and fake.requests == []
