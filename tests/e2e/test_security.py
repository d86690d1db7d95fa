"""Who gets in: signed webhooks, single-use stream tokens checked before any upstream session."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
from twilio.request_validator import RequestValidator

from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller

from .conftest import AUTH_TOKEN, Gateway, sample, twiml_parameters


def test_twilio_signature_test_vector():
    """protocol-reference.md §4.7: the validator we rely on agrees with Twilio's published vector."""
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234",
              "From": "+14158675310", "To": "+18005551212"}
    url = "https://example.com/myapp.php?foo=1&bar=2"
    assert RequestValidator("12345").compute_signature(url, params) == "L/OH5YylLD5NRKLltdqwSvS0BnU="
    assert RequestValidator("12345").validate(url, params, "L/OH5YylLD5NRKLltdqwSvS0BnU=")


async def raw_stream(gateway: Gateway, token: str | dict[str, str] | None,
                     call_sid: str = "CA" + "1" * 32) -> tuple[int | None, str]:
    """Open /media and send Twilio's connected + start with the given token (or all the stream's parameters,
    as the webhook's answer named them); return the close code."""
    async with aiohttp.ClientSession() as http, http.ws_connect(gateway.url.replace("http", "ws") + "/media") as ws:
        await ws.send_str('{"event":"connected","protocol":"Call","version":"1.0.0"}')
        params = {} if token is None else token if isinstance(token, dict) else {"token": token}
        start = {"event": "start", "sequenceNumber": "1", "streamSid": "MZ" + "2" * 32,
                 "start": {"accountSid": "AC" + "3" * 32, "streamSid": "MZ" + "2" * 32, "callSid": call_sid,
                           "tracks": ["inbound"], "customParameters": params,
                           "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
        await ws.send_str(orjson.dumps(start).decode())
        msg = await asyncio.wait_for(ws.receive(), 5.0)
        return ws.close_code, str(msg.extra or "")


async def test_forged_token_is_refused_before_any_upstream_session(gateway: Gateway):
    before = sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"})
    code, reason = await raw_stream(gateway, "v1.9999999999.nonce.forgedsignature")
    assert code == 1008
    assert "token" in reason
    assert gateway.echo.sessions == []
    assert sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"}) == before + 1


async def test_missing_token_is_refused(gateway: Gateway):
    code, _ = await raw_stream(gateway, None)
    assert code == 1008
    assert gateway.echo.sessions == []


async def test_replayed_token_is_refused(gateway: Gateway):
    caller = SimulatedCaller(gateway.url)
    await caller.run(CallScript(utterances=[speech_like(300)], answer_timeout_ms=3000))
    sessions = len(gateway.echo.sessions)
    code, reason = await raw_stream(gateway, caller.report.stream_parameters, caller.call_sid)
    assert code == 1008 and "replayed" in reason
    assert len(gateway.echo.sessions) == sessions


async def test_token_of_another_call_is_refused(gateway: Gateway):
    caller = SimulatedCaller(gateway.url)
    _, body = await caller.webhook()
    await caller.close()
    code, reason = await raw_stream(gateway, twiml_parameters(body), call_sid="CA" + "9" * 32)
    assert "bad_signature" in reason
    assert code == 1008
    assert gateway.echo.sessions == []


async def test_unsigned_webhook_is_refused(signed_gateway: Gateway):
    before = sample("gateway_webhook_requests_total", {"result": "forbidden"})
    async with aiohttp.ClientSession() as http:
        form = {"CallSid": "CA" + "4" * 32, "From": "+15550001", "To": "+15550002"}
        async with http.post(signed_gateway.url + "/voice", data=form) as resp:
            assert resp.status == 403
        bad = {"X-Twilio-Signature": "L/OH5YylLD5NRKLltdqwSvS0BnU="}
        async with http.post(signed_gateway.url + "/voice", data=form, headers=bad) as resp:
            assert resp.status == 403
    assert sample("gateway_webhook_requests_total", {"result": "forbidden"}) == before + 2


async def test_signed_webhook_and_call_are_accepted(signed_gateway: Gateway):
    caller = SimulatedCaller(signed_gateway.url, auth_token=AUTH_TOKEN)
    report = await caller.run(CallScript(utterances=[speech_like(400, seed=7)]))
    assert report.webhook_status == 200 and report.errors == []
    assert len(report.turn_latencies_ms) == 1
    assert report.stream_parameters["from"] == "+15005550006"
    assert "<Connect><Stream" in report.twiml


async def test_malformed_and_unknown_frames_are_counted_and_ignored(gateway: Gateway):
    labels = {"carrier": "twilio"}
    kinds = ["invalid_json", "unknown_event", "binary_frame", "unknown_stream", "invalid_media", "missing_event"]
    before = {k: sample("gateway_carrier_protocol_errors_total", {**labels, "kind": k}) for k in kinds}
    caller = SimulatedCaller(gateway.url)
    await caller.connect()
    await caller.send_raw("{not json")
    await caller.send_raw('{"event":"dance","streamSid":"x"}')
    await caller.send_raw(b"\x00\x01binary")
    await caller.send_raw('{"event":"media","streamSid":"MZ000","media":{"payload":"//8="}}')
    await caller.send_raw(orjson.dumps({"event": "media", "streamSid": caller.stream_sid, "media": {}}).decode())
    await caller.send_raw('{"no_event":true}')
    report = await caller.speak(CallScript(utterances=[speech_like(500, seed=8)]))
    assert len(report.turn_latencies_ms) == 1  # the call went on and was answered
    assert report.closed_by == "caller"
    for k in kinds:
        assert sample("gateway_carrier_protocol_errors_total", {**labels, "kind": k}) == before[k] + 1, k


async def signed_parameters(gateway: Gateway, call_sid: str) -> dict[str, str]:
    caller = SimulatedCaller(gateway.url, auth_token=AUTH_TOKEN, call_sid=call_sid)
    status, body = await caller.webhook()
    await caller.close()
    assert status == 200
    return twiml_parameters(body)


async def test_media_handshake_with_a_bad_signature_is_refused_before_the_upgrade(signed_gateway: Gateway):
    before = sample("gateway_stream_tokens_rejected_total", {"reason": "bad_handshake_signature"})
    media = signed_gateway.url.replace("http", "ws") + "/media"
    forged = RequestValidator("not-the-auth-token").compute_signature(media, {})
    async with aiohttp.ClientSession() as http:
        try:
            await http.ws_connect(media, headers={"X-Twilio-Signature": forged})
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403
        else:
            raise AssertionError("the handshake was accepted")
    assert sample("gateway_stream_tokens_rejected_total", {"reason": "bad_handshake_signature"}) == before + 1
    assert signed_gateway.echo.sessions == []


async def test_media_handshake_signed_over_either_url_form_or_unsigned_is_let_through(signed_gateway: Gateway):
    """Twilio signs the Stream URL as written in the TwiML, or with a trailing slash (§4.2); a handshake
    without the header passes too: the single-use stream token is the gate that always applies."""
    media = signed_gateway.url.replace("http", "ws") + "/media"
    validator = RequestValidator(AUTH_TOKEN)
    for i, headers in enumerate([{"X-Twilio-Signature": validator.compute_signature(media + "/", {})},
                                 {"X-Twilio-Signature": validator.compute_signature(media, {})}, {}]):
        call_sid = f"CA{i:032d}"
        parameters = await signed_parameters(signed_gateway, call_sid)
        async with aiohttp.ClientSession() as http, http.ws_connect(media, headers=headers) as ws:
            start = {"event": "start", "streamSid": "MZ" + "2" * 32, "start": {
                "accountSid": "AC" + "3" * 32, "streamSid": "MZ" + "2" * 32, "callSid": call_sid,
                "customParameters": parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
            await ws.send_str(orjson.dumps(start).decode())
            session = await signed_gateway.echo.wait_for_session(i)
            await session.wait_for_event("session.update")
            await ws.send_str('{"event":"stop","streamSid":"MZ' + "2" * 32 + '"}')
            await asyncio.wait_for(ws.receive(), 5)
            assert ws.close_code == 1000
