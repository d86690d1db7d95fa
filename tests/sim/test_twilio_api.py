"""The fake of Twilio's REST API on its own: a creation answered like Twilio's, the callbacks of a call not
answered, signed as Twilio signs them; a wrong password refused; the command line."""

from __future__ import annotations

import aiohttp
from aiohttp import encode_basic_auth, web
from twilio.request_validator import RequestValidator

from gateway.__main__ import build_parser
from gateway.sim.twilio_api import FakeTwilioApi

TOKEN = "fake-auth-token-123"
ACCOUNT = "AC" + "12" * 16


async def test_a_busy_call_gets_its_signed_callbacks_only():
    received: list[tuple[str, dict[str, str], str]] = []

    async def status(request: web.Request) -> web.Response:
        received.append((str(request.url), dict(await request.post()), request.headers["X-Twilio-Signature"]))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/status", status)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/status?call=out_1"
    fake = await FakeTwilioApi(auth_token=TOKEN, answer="busy", ring_ms=1).start()
    try:
        async with aiohttp.ClientSession() as http:
            form = [("To", "+14155550100"), ("From", "+14155550199"), ("Twiml", "<Response/>"),
                    ("StatusCallback", url), ("StatusCallbackEvent", "ringing"), ("StatusCallbackEvent", "completed")]
            async with http.post(f"{fake.url}/2010-04-01/Accounts/{ACCOUNT}/Calls.json", data=form,
                                 headers={"Authorization": encode_basic_auth(ACCOUNT, TOKEN)}) as resp:
                assert resp.status == 201
                sid = (await resp.json())["sid"]
            async with http.post(f"{fake.url}/2010-04-01/Accounts/{ACCOUNT}/Calls.json", data=form,
                                 headers={"Authorization": encode_basic_auth(ACCOUNT, "wrong")}) as resp:
                assert resp.status == 401 and (await resp.json())["code"] == 20003
        await fake.calls[sid].done.wait()
    finally:
        await fake.stop()
        await runner.cleanup()
    assert [fields["CallStatus"] for _, fields, _ in received] == ["ringing", "busy"]  # initiated was not asked for
    assert received[-1][1]["CallDuration"] == "0" and received[-1][1]["CallSid"] == sid
    validator = RequestValidator(TOKEN)
    assert all(validator.validate(u, fields, signature) for u, fields, signature in received)
    assert fake.created[0]["form"]["StatusCallbackEvent"] == ["ringing", "completed"]


def test_the_command_line():
    args = build_parser().parse_args(["fake-twilio", "--port", "9999", "--answer", "machine", "--auth-token", "t"])
    assert (args.port, args.answer, args.auth_token, args.gateway) == (9999, "machine", "t", "http://127.0.0.1:8080")
