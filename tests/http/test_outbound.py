"""The call API's doors over the real app: the bearer token (off without ADMIN_TOKEN, 401 without the right
one), every field of POST /calls checked and named, the carrier's refusals, the lookups of GET, DELETE and
transfer. The fake Twilio API records what it is asked and dials nobody here (tests/e2e/test_outbound.py
places the calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from gateway.agents.profile import AgentBook, Profile
from gateway.sim.twilio_api import FakeTwilioApi

from ..e2e.conftest import AUTH_TOKEN, Gateway, sample, start_gateway

ADMIN = "admin-token-for-tests"
ACCOUNT = "AC" + "12" * 16
CALL = {"to": "+14155550100", "from": "+14155550199"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilioApi]:
    api = await FakeTwilioApi(auth_token=AUTH_TOKEN, dial=False).start()
    yield api
    await api.stop()


@pytest.fixture
async def gw(echo, fake: FakeTwilioApi) -> AsyncIterator[Gateway]:
    gateway, runner = await start_gateway(echo, "ga", ADMIN_TOKEN=ADMIN, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                                          TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_API_BASE_URL=fake.url,
                                          OUTBOUND_ALLOWED_PREFIXES="+1,+44")
    yield gateway
    await runner.cleanup()


async def call_api(gw: Gateway, method: str, path: str, body: Any = None, *, token: str | None = ADMIN,
                   raw: bytes | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as http, http.request(
            method, gw.url + path, json=body if raw is None else None, data=raw, headers=headers) as resp:
        text = await resp.read()
        return resp.status, orjson.loads(text) if resp.content_type == "application/json" else text


async def test_without_admin_token_the_call_api_is_off_and_the_rest_runs(echo):
    gateway, runner = await start_gateway(echo, "ga")
    before = sample("gateway_outbound_requests_total", {"result": "off"})
    try:
        for method, path in [("POST", "/calls"), ("GET", "/calls/CA1"), ("DELETE", "/calls/CA1"),
                             ("POST", "/calls/CA1/transfer")]:
            status, answer = await call_api(gateway, method, path, CALL, token=None)
            assert status == 403 and answer == {"error": "the call API is off: set ADMIN_TOKEN (its bearer token) "
                                                         "to turn it on"}
        assert (await call_api(gateway, "GET", "/calls", token=None))[0] == 200  # the list, as before
    finally:
        await runner.cleanup()
    assert sample("gateway_outbound_requests_total", {"result": "off"}) == before + 4


@pytest.mark.parametrize("token", [None, "wrong", ""])
async def test_a_missing_or_wrong_bearer_token_is_401(gw: Gateway, fake: FakeTwilioApi, token):
    status, answer = await call_api(gw, "POST", "/calls", CALL, token=token)
    assert status == 401 and "bearer token" in answer["error"] and ADMIN not in answer["error"]
    assert fake.created == []


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"not json", 400, "the body must be a JSON object (it is not valid JSON)"),
    (b"[1, 2]", 400, "the body must be a JSON object"),
    ({**CALL, "too": "+1"}, 400, "unknown field(s): 'too'; the fields are to, from, agent, variables, metadata, "
                                 "machine_detection"),
    ({"from": "+14155550199"}, 400, "to must be a phone number in E.164 form, e.g. +14155550100 (got 'null')"),
    ({**CALL, "to": "0044 7700 900123"}, 400, "to must be a phone number in E.164 form"),
    ({**CALL, "to": "+33612345678"}, 403, "to +33612345678 is not in an allowed prefix (OUTBOUND_ALLOWED_PREFIXES: "
                                          "+1,+44)"),
    ({"to": "+14155550100"}, 400, "from is required (or set from_number on agent default)"),
    ({**CALL, "from": "sales"}, 400, "from must be a phone number in E.164 form"),
    ({**CALL, "agent": "nobody"}, 400, "agent 'nobody' is not an agent profile; the agents are: default"),
    ({**CALL, "agent": 7}, 400, "agent must be the name of an agent profile"),
    ({**CALL, "machine_detection": "yes"}, 400, "machine_detection must be true or false"),
    ({**CALL, "variables": ["a"]}, 400, "variables must be an object of names to strings"),
    ({**CALL, "variables": {"first name": "Ada"}}, 400, "variables: 'first name' is not a name"),
    ({**CALL, "variables": {"n": 5}}, 400, "variables.n must be a string of at most 200 characters"),
    ({**CALL, "variables": {f"v{i}": "x" * 100 for i in range(5)}}, 400, "variables must take at most 450"),
    ({**CALL, "metadata": "crm"}, 400, "metadata must be a JSON object"),
    ({**CALL, "metadata": {"blob": "x" * 3000}}, 400, "metadata must take at most 2000 characters as JSON"),
])
async def test_every_field_is_checked_and_named(gw: Gateway, fake: FakeTwilioApi, body, status, message):
    label = "forbidden" if status == 403 else "bad_request"
    before = sample("gateway_outbound_requests_total", {"result": label})
    got, answer = await call_api(gw, "POST", "/calls", None if isinstance(body, bytes) else body,
                                 raw=body if isinstance(body, bytes) else None)
    assert got == status and answer["error"].startswith(message), answer
    assert fake.created == [] and gw.state.reservations == {} and len(gw.state.outbound) == 0
    assert sample("gateway_outbound_requests_total", {"result": label}) == before + 1
    assert (await call_api(gw, "GET", "/calls"))[0] == 200  # and the gateway serves on


async def test_a_placed_call_takes_the_agents_number_and_carries_its_variables(gw: Gateway, fake: FakeTwilioApi):
    agent = gw.state.settings.agent
    gw.state.agents = AgentBook({"default": Profile("default", agent),
                                 "reminders": Profile("reminders", agent, from_number="+14155550123")}, "default")
    status, answer = await call_api(gw, "POST", "/calls", {"to": "+447700900123", "agent": "reminders",
                                                           "variables": {"first_name": "Ada", "slot": "9:30"}})
    assert status == 201, answer
    assert (answer["from"], answer["agent"], answer["status"]) == ("+14155550123", "reminders", "queued")
    twiml = fake.created[0]["form"]["Twiml"]
    assert '<Parameter name="agent" value="reminders" />' in twiml
    assert '<Parameter name="vars" value="{&quot;first_name&quot;:&quot;Ada&quot;,&quot;slot&quot;:&quot;9:30&quot;}"' \
        in twiml
    oid = answer["outbound_id"]
    assert oid in gw.state.reservations  # its place is held until its stream comes (or it ends)
    status, record = await call_api(gw, "GET", f"/calls/{oid}")
    assert status == 200 and record["id"] == answer["id"] and record["variables"] == ["first_name", "slot"]
    assert record["live"] is None and record["status"] == "queued"


async def test_without_carrier_credentials_the_call_is_refused_naming_them(echo, fake: FakeTwilioApi):
    gateway, runner = await start_gateway(echo, "ga", ADMIN_TOKEN=ADMIN, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                                          TWILIO_API_BASE_URL=fake.url)
    try:
        status, answer = await call_api(gateway, "POST", "/calls", CALL)
        assert gateway.state.reservations == {} and len(gateway.state.outbound) == 0
    finally:
        await runner.cleanup()
    assert status == 503 and "TWILIO_AUTH_TOKEN and TWILIO_ACCOUNT_SID" in answer["error"]
    assert fake.created == []


async def test_the_carrier_refusing_the_call_is_a_502_without_secrets(echo, fake: FakeTwilioApi):
    gateway, runner = await start_gateway(echo, "ga", ADMIN_TOKEN=ADMIN, TWILIO_AUTH_TOKEN="another-auth-token",
                                          TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_API_BASE_URL=fake.url)
    before = sample("gateway_outbound_requests_total", {"result": "carrier_error"})
    try:
        status, answer = await call_api(gateway, "POST", "/calls", CALL)
        assert gateway.state.reservations == {}
    finally:
        await runner.cleanup()
    assert status == 502
    assert answer["error"] == ("twilio did not place the call: HTTP 401, error 20003: "
                               "Unable to create record: Authenticate")
    assert sample("gateway_outbound_requests_total", {"result": "carrier_error"}) == before + 1


async def test_while_draining_no_call_is_placed(gw: Gateway, fake: FakeTwilioApi):
    gw.state.draining = True
    status, answer = await call_api(gw, "POST", "/calls", CALL)
    assert status == 503 and "draining" in answer["error"] and fake.created == []


async def test_unknown_calls_and_calls_not_live(gw: Gateway, fake: FakeTwilioApi):
    for method, path, body in [("GET", "/calls/CA404", None), ("DELETE", "/calls/CA404", None),
                               ("POST", "/calls/CA404/transfer", {"to": "+14155550111"})]:
        status, answer = await call_api(gw, method, path, body)
        assert status == 404 and "CA404" in answer["error"]
    status, placed = await call_api(gw, "POST", "/calls", CALL)
    status, answer = await call_api(gw, "POST", f"/calls/{placed['id']}/transfer", {"to": "+14155550111"})
    assert status == 409 and "no live stream here (status queued)" in answer["error"]
    for body, message in [({"to": "somewhere"}, "to must be a phone number in E.164 form or a sip: URI"),
                          ({"to": "+14155550111", "when": "now"}, "unknown field(s): 'when'"),
                          ({"to": "+33612345678"}, "to +33612345678 is not in an allowed prefix")]:
        status, answer = await call_api(gw, "POST", f"/calls/{placed['id']}/transfer", body)
        assert status in (400, 403) and answer["error"].startswith(message)
    gw.state.outbound.get(placed["id"]).progress("busy", 0, None)
    status, answer = await call_api(gw, "DELETE", f"/calls/{placed['id']}")
    assert status == 409 and "already over (busy)" in answer["error"]
    assert fake.requests == []
