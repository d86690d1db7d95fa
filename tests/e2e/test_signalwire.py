"""SignalWire through the real app, in both dialects: the simulated caller speaks SignalWire's copy of Twilio's
protocol (UUID ids, X-SignalWire-Signature, frames without a top-level streamSid) on /voice/signalwire and
/media/signalwire; calls, barge-in, signatures, ids, malformed frames and stream tokens, labelled signalwire."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import aiohttp
import orjson

from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller

from .conftest import Gateway, sample, start_gateway

SIGNING_KEY = "PSK_signalwire_signing_key_for_tests"
CARRIER = {"carrier": "signalwire"}


def compat_signature(key: str, url: str, fields: dict[str, str]) -> str:
    """SignalWire's cXML webhook signature, computed from the scheme: base64 HMAC-SHA1 over the URL and the
    fields sorted by name."""
    data = url + "".join(name + fields[name] for name in sorted(fields))
    return base64.b64encode(hmac.new(key.encode(), data.encode(), hashlib.sha1).digest()).decode()


def read_reports(directory: Path) -> list[bytes]:
    return [line for f in sorted(directory.glob("calls-*.jsonl")) for line in f.read_bytes().splitlines()]


def form(call_sid: str) -> dict[str, str]:
    return {"CallSid": call_sid, "AccountSid": str(uuid.uuid4()), "From": "+14155550100", "To": "+14155550199",
            "Direction": "inbound", "CallStatus": "ringing", "ApiVersion": "2010-04-01"}


async def test_two_turn_call_carries_the_signalwire_label(echo, dialect: str, tmp_path: Path):
    gateway, runner = await start_gateway(echo, dialect, CALL_REPORTS_DIR=str(tmp_path))
    labels = {**CARRIER, "provider": "custom", "outcome": "completed"}
    before = sample("gateway_calls_total", labels)
    try:
        caller = SimulatedCaller(gateway.url, carrier="signalwire")
        assert uuid.UUID(caller.call_sid) and uuid.UUID(caller.stream_sid) and uuid.UUID(caller.account_sid)
        report = await caller.run(CallScript(utterances=[speech_like(600, seed=1), speech_like(600, seed=2)]))
        assert report.errors == []
        assert report.webhook_status == 200 and "<Connect><Stream" in report.twiml
        assert "/media/signalwire" in (caller.stream_url or "")
        assert len(report.turn_latencies_ms) == 2, report.events
        assert report.media_ms_received >= 2 * 600 and len(report.heard) / 8 >= 2 * 600
        assert report.closed_by == "caller"
        session = gateway.echo.sessions[0]
        assert session.dialect == dialect and session.errors_sent == []
        # Passthrough: what the caller sent is what the upstream got, and the agent's audio came back as sent.
        deltas = [e["delta"] for e in session.sent if e["type"].endswith("audio.delta")]
        assert [m["media"]["payload"] for m in caller.received if m.get("event") == "media"] == deltas
        assert all(m["streamSid"] == caller.stream_sid for m in caller.received)  # the UUID, echoed back
        await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
        await asyncio.wait_for(gateway.state.reports._queue.join(), 5.0)
    finally:
        await runner.cleanup()
    assert sample("gateway_calls_total", labels) == before + 1
    (summary,) = [orjson.loads(line) for line in read_reports(tmp_path)]
    assert summary["carrier"] == "signalwire" and summary["call_sid"] == caller.call_sid
    assert summary["outcome"] == "completed"


async def test_signed_webhook_is_accepted_and_forged_ones_refused(echo, dialect: str):
    gateway, runner = await start_gateway(echo, dialect, SIGNALWIRE_SIGNING_KEY=SIGNING_KEY)
    forbidden = sample("gateway_webhook_requests_total", {"result": "forbidden"})
    try:
        caller = SimulatedCaller(gateway.url, carrier="signalwire", auth_token=SIGNING_KEY)
        report = await caller.run(CallScript(utterances=[speech_like(400, seed=7)]))
        assert report.webhook_status == 200 and report.errors == []
        assert len(report.turn_latencies_ms) == 1
        assert report.stream_parameters["from"] == "+15005550006"

        url = gateway.url + "/voice/signalwire"
        fields = form(str(uuid.uuid4()))
        async with aiohttp.ClientSession() as http:
            for headers in ({},  # unsigned
                            {"X-SignalWire-Signature": compat_signature("another-projects-key", url, fields)},
                            {"X-SignalWire-Signature": compat_signature(SIGNING_KEY, url + "?x=1", fields)}):
                async with http.post(url, data=fields, headers=headers) as resp:
                    assert resp.status == 403
            # The same request, signed with the key, in either header SignalWire's validators read.
            for name in ("X-SignalWire-Signature", "X-Twilio-Signature"):
                signed = {name: compat_signature(SIGNING_KEY, url, fields)}
                async with http.post(url, data=fields, headers=signed) as resp:
                    assert resp.status == 200 and "<Connect><Stream" in await resp.text()
                fields = form(str(uuid.uuid4()))
    finally:
        await runner.cleanup()
    assert sample("gateway_webhook_requests_total", {"result": "forbidden"}) == forbidden + 3


async def test_a_uuid_call_sid_is_signalwire_s_not_twilio_s(gateway: Gateway):
    call_sid = str(uuid.uuid4())
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/voice/signalwire", data=form(call_sid)) as resp:
            assert resp.status == 200
            root = ET.fromstring(await resp.text())
        stream = root.find("./Connect/Stream")
        assert stream is not None and stream.get("url", "").endswith("/media/signalwire")
        async with http.post(gateway.url + "/voice/twilio", data=form(str(uuid.uuid4()))) as resp:
            assert resp.status == 400 and "CallSid is missing or malformed" in await resp.text()
        async with http.post(gateway.url + "/voice/signalwire", data=form("CA" + "ab" * 16)) as resp:
            assert resp.status == 400 and "not a SignalWire call id" in await resp.text()
    assert gateway.echo.sessions == []


async def test_malformed_frames_are_counted_under_signalwire_and_ignored(gateway: Gateway):
    kinds = ["invalid_json", "unknown_event", "binary_frame", "unknown_stream", "invalid_media", "missing_event"]
    before = {k: sample("gateway_carrier_protocol_errors_total", {**CARRIER, "kind": k}) for k in kinds}
    twilio_before = {k: sample("gateway_carrier_protocol_errors_total", {"carrier": "twilio", "kind": k})
                     for k in kinds}
    caller = SimulatedCaller(gateway.url, carrier="signalwire")
    await caller.connect()
    await caller.send_raw("{not json")
    await caller.send_raw('{"event":"dance"}')
    await caller.send_raw(b"\x00\x01binary")
    other = str(uuid.uuid4())
    await caller.send_raw('{"event":"media","streamSid":"' + other + '","media":{"payload":"//8="}}')
    await caller.send_raw('{"event":"media","media":{}}')  # no streamSid (SignalWire's shape), no payload
    await caller.send_raw('{"no_event":true}')
    report = await caller.speak(CallScript(utterances=[speech_like(500, seed=8)]))
    assert len(report.turn_latencies_ms) == 1  # the call went on and was answered
    assert report.closed_by == "caller"
    for k in kinds:
        assert sample("gateway_carrier_protocol_errors_total", {**CARRIER, "kind": k}) == before[k] + 1, k
        assert sample("gateway_carrier_protocol_errors_total", {"carrier": "twilio", "kind": k}) == twilio_before[k]


async def raw_stream(gateway: Gateway, token: str | None, call_sid: str) -> tuple[int | None, str]:
    """Open /media/signalwire and send SignalWire's connected + start with the given token."""
    media = gateway.url.replace("http", "ws", 1) + "/media/signalwire"
    async with aiohttp.ClientSession() as http, http.ws_connect(media) as ws:
        await ws.send_str('{"event":"connected","protocol":"Call","version":"0.2.0"}')
        start = {"event": "start", "sequenceNumber": "1", "start": {
            "streamSid": str(uuid.uuid4()), "accountSid": str(uuid.uuid4()), "callSid": call_sid,
            "tracks": ["inbound"], "customParameters": {} if token is None else {"token": token},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}
        await ws.send_str(orjson.dumps(start).decode())
        msg = await asyncio.wait_for(ws.receive(), 5.0)
        return ws.close_code, str(msg.extra or "")


async def test_the_stream_token_is_checked_before_any_upstream_session(gateway: Gateway):
    rejected = sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"})
    calls = {**CARRIER, "provider": "custom", "outcome": "rejected"}
    calls_before = sample("gateway_calls_total", calls)
    code, reason = await raw_stream(gateway, "v1.9999999999.nonce.forgedsignature", str(uuid.uuid4()))
    assert code == 1008 and "token" in reason
    assert sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"}) == rejected + 1
    code, _ = await raw_stream(gateway, None, str(uuid.uuid4()))
    assert code == 1008
    # A real token, minted by the webhook for one call, does not open a stream for another.
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/voice/signalwire", data=form(str(uuid.uuid4()))) as resp:
            body = await resp.text()
    token = body.split('name="token" value="')[1].split('"')[0]
    code, _ = await raw_stream(gateway, token, str(uuid.uuid4()))
    assert code == 1008
    assert gateway.echo.sessions == []
    # A token is bound to its call: the wrong call's token fails its signature.
    assert sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"}) == rejected + 2
    await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
    assert sample("gateway_calls_total", calls) == calls_before + 3


async def test_the_call_command_places_a_signalwire_call_through_a_served_gateway():
    """`python -m gateway call --carrier signalwire` against `python -m gateway serve`, both real processes."""
    import signal

    from .test_commands import clean_env, free_port, place_call, read_until

    def env(**extra: str) -> dict[str, str]:
        return {k: v for k, v in clean_env(**extra).items() if k != "SIGNALWIRE_SIGNING_KEY" or k in extra}

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--env-file", "none",
        env=env(PORT=str(port), SIGNALWIRE_SIGNING_KEY=SIGNING_KEY),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[dict] = []
    try:
        assert proc.stdout is not None
        await read_until(proc.stdout, "gateway_listening", lines)
        # Twilio (and every other unconfigured carrier) stays unsigned (a warning names it); SignalWire is signed.
        warned = [line["carrier"] for line in lines if line.get("event") == "webhook_unauthenticated"]
        assert "twilio" in warned and "signalwire" not in warned
        url = f"http://127.0.0.1:{port}"
        code, out = await place_call("--url", url, "--carrier", "signalwire", "--turns", "1", env=env())
        assert code == 1 and out.splitlines()[1:] == [
            "webhook: HTTP 403",
            "refused: the webhook refused the call (HTTP 403): set --auth-token (or SIGNALWIRE_SIGNING_KEY) to the "
            "gateway's SIGNALWIRE_SIGNING_KEY"]
        code, out = await place_call("--url", url, "--carrier", "signalwire", "--turns", "1", "--json",
                                     env=env(SIGNALWIRE_SIGNING_KEY=SIGNING_KEY))  # the key from the env
        assert code == 0, out
        report = orjson.loads(out)
        assert len(report["turn_latencies_ms"]) == 1 and report["errors"] == []
        assert uuid.UUID(report["call_sid"])
        ended = await read_until(proc.stdout, "call_summary", lines)
        assert ended["outcome"] == "completed" and ended["carrier"] == "signalwire"
        assert ended["call_sid"] == report["call_sid"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
