"""MAX_CONCURRENT_CALLS holds against a burst: a place is reserved when the webhook answers and the limit
is enforced again when the stream starts (real app, loopback)."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from ..e2e.conftest import start_gateway

LIMIT = 5


def start_frame(call_sid: str, token: str, agent: str = "default") -> str:
    return orjson.dumps({"event": "start", "streamSid": "MZ" + call_sid[2:], "start": {
        "streamSid": "MZ" + call_sid[2:], "callSid": call_sid, "accountSid": "AC" + "1" * 32,
        "customParameters": {"token": token, "agent": agent},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}).decode()


async def webhook(http: aiohttp.ClientSession, url: str, call_sid: str) -> str:
    async with http.post(url + "/voice/twilio", data={"CallSid": call_sid}) as resp:
        assert resp.status == 200
        return await resp.text()


def token_of(twiml: str) -> str:
    return twiml.split('name="token" value="')[1].split('"')[0]


async def test_a_burst_of_calls_gets_exactly_the_limit_and_the_streams_are_checked_again(echo):
    gw, runner = await start_gateway(echo, "ga", MAX_CONCURRENT_CALLS=str(LIMIT))
    try:
        sids = [f"CA{i:032x}" for i in range(2 * LIMIT)]
        async with aiohttp.ClientSession() as http:
            answers = await asyncio.gather(*(webhook(http, gw.url, sid) for sid in sids))  # all ring at once
            accepted = [(sid, token_of(a)) for sid, a in zip(sids, answers, strict=True) if "<Connect>" in a]
            assert len(accepted) == LIMIT
            assert sum("<Say>" in a and "<Connect>" not in a for a in answers) == LIMIT  # busy
            ws_url = gw.url.replace("http", "ws") + "/media/twilio"
            sockets = []
            for sid, token in accepted:  # every answered call's stream is served
                ws = await http.ws_connect(ws_url)
                await ws.send_str(start_frame(sid, token))
                sockets.append(ws)
            for i in range(LIMIT):
                await echo.wait_for_session(i)
            # A valid token minted without a reservation (as another replica would): over the limit, refused.
            extra = "CA" + "e" * 32
            async with http.ws_connect(ws_url) as ws:
                await ws.send_str(start_frame(extra, gw.state.tokens.mint(extra, "agent=default")))
                assert (await ws.receive()).type is aiohttp.WSMsgType.CLOSE
                assert ws.close_code == 1008
            assert len(echo.sessions) == LIMIT  # no upstream session was opened for it
            # A call ends: its place is free again.
            await sockets[0].close()
            async with asyncio.timeout(5):
                while len(gw.state.admitted) == LIMIT:  # noqa: ASYNC110 - the call ends asynchronously
                    await asyncio.sleep(0.01)
            assert "<Connect>" in await webhook(http, gw.url, "CA" + "f" * 32)
            for ws in sockets[1:]:
                await ws.close()
    finally:
        await runner.cleanup()
