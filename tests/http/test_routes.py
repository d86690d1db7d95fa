"""The routes each carrier gets, and the bare /voice and /media kept for Twilio (real app, loopback)."""

from __future__ import annotations

import aiohttp

from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller

from ..e2e.conftest import Gateway

CALL_SID = "CA" + "7" * 32


async def test_the_webhook_answers_with_the_carriers_own_media_route(gateway: Gateway):
    async with aiohttp.ClientSession() as http:
        for path in ("/voice/twilio", "/voice"):
            async with http.post(gateway.url + path, data={"CallSid": CALL_SID}) as resp:
                assert resp.status == 200, path
                body = await resp.text()
            ws_url = gateway.url.replace("http://", "ws://")
            assert f'<Stream url="{ws_url}/media/twilio">' in body, path
            assert '<Parameter name="token"' in body


async def test_an_unknown_carrier_is_404_and_names_the_ones_served(gateway: Gateway):
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/voice/acme", data={"CallSid": CALL_SID}) as resp:
            assert resp.status == 404
            assert "unknown carrier 'acme'" in await resp.text() and "twilio" in await resp.text()
        async with http.get(gateway.url + "/media/acme") as resp:
            assert resp.status == 404


async def test_a_call_through_the_old_webhook_route_is_served_like_any(gateway: Gateway):
    caller = SimulatedCaller(gateway.url, webhook_path="/voice")
    report = await caller.run(CallScript(utterances=[speech_like(600, seed=3)]))
    assert report.webhook_status == 200 and not report.errors
    assert caller.stream_url is not None and caller.stream_url.endswith("/media/twilio")
    assert len(report.turn_latencies_ms) == 1
