"""Plivo through the real app, in both dialects: the simulated Plivo caller (answer URL, `<Stream>` XML,
start/media, playAudio/checkpoint/clearAudio, the socket closed to hang up) on /voice/plivo and
/media/plivo; calls, barge-in, V3 signatures, ids, malformed frames and stream tokens, labelled plivo."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript
from gateway.sim.plivo_caller import PlivoCaller

from .conftest import Gateway, sample, start_gateway

AUTH_TOKEN = "plivo-auth-token-for-tests"
CARRIER = {"carrier": "plivo"}


def v3_signature(token: str, url: str, fields: dict[str, str], nonce: str) -> str:
    """Plivo's V3 signature of a POST to a URL without a query: base64 HMAC-SHA256 over
    `url?` + the fields sorted by name (name and value concatenated) + `.` + nonce."""
    data = url + "?" + "".join(name + fields[name] for name in sorted(fields)) + "." + nonce
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha256).digest()).decode()


def read_reports(directory: Path) -> list[bytes]:
    return [line for f in sorted(directory.glob("calls-*.jsonl")) for line in f.read_bytes().splitlines()]


def form(call_uuid: str) -> dict[str, str]:
    return {"CallUUID": call_uuid, "From": "14155550100", "To": "14155550199", "Direction": "inbound",
            "CallStatus": "ringing", "Event": "StartApp"}


async def test_two_turn_call_carries_the_plivo_label(echo, dialect: str, tmp_path: Path):
    gateway, runner = await start_gateway(echo, dialect, CALL_REPORTS_DIR=str(tmp_path))
    labels = {**CARRIER, "provider": "custom", "outcome": "completed"}
    before = sample("gateway_calls_total", labels)
    try:
        caller = PlivoCaller(gateway.url)
        assert uuid.UUID(caller.call_sid) and uuid.UUID(caller.stream_sid)
        report = await caller.run(CallScript(utterances=[speech_like(600, seed=1), speech_like(600, seed=2)]))
        assert report.errors == []
        assert report.webhook_status == 200 and "<Stream " in report.twiml
        assert (caller.stream_url or "").endswith("/media/plivo")
        assert report.stream_parameters["from"] == "15005550006" and report.stream_parameters["token"]
        assert len(report.turn_latencies_ms) == 2, report.events
        assert report.media_ms_received >= 2 * 600 and len(report.heard) / 8 >= 2 * 600
        assert report.marks_echoed  # checkpoints went round as playedStream
        assert report.closed_by == "caller"  # the caller closed the socket: Plivo sends no stop
        session = gateway.echo.sessions[0]
        assert session.dialect == dialect and session.errors_sent == []
        # Passthrough: what the caller sent is what the upstream got, and the agent's audio came back as sent.
        deltas = [e["delta"] for e in session.sent if e["type"].endswith("audio.delta")]
        assert [m["media"]["payload"] for m in caller.received if m["event"] == "playAudio"] == deltas
        appended = [e["audio"] for e in session.received if e.get("type") == "input_audio_buffer.append"]
        sent = caller.sent_payloads  # each appended string is a payload the caller sent, in order
        first = sent.index(appended[0])
        assert appended == sent[first : first + len(appended)] and all(len(p) == 216 for p in appended)
        assert {m["event"] for m in caller.received} <= {"playAudio", "checkpoint", "clearAudio"}
        assert all(m["streamId"] == caller.stream_sid for m in caller.received if m["event"] != "playAudio")
        await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
        await asyncio.wait_for(gateway.state.reports._queue.join(), 5.0)
    finally:
        await runner.cleanup()
    assert sample("gateway_calls_total", labels) == before + 1
    (summary,) = [orjson.loads(line) for line in read_reports(tmp_path)]
    assert summary["carrier"] == "plivo" and summary["call_sid"] == caller.call_sid
    assert summary["outcome"] == "completed"


async def test_signed_webhook_is_accepted_and_forged_ones_refused(echo, dialect: str):
    gateway, runner = await start_gateway(echo, dialect, PLIVO_AUTH_TOKEN=AUTH_TOKEN)
    forbidden = sample("gateway_webhook_requests_total", {"result": "forbidden"})
    try:
        caller = PlivoCaller(gateway.url, auth_token=AUTH_TOKEN)
        report = await caller.run(CallScript(utterances=[speech_like(400, seed=7)]))
        assert report.webhook_status == 200 and report.errors == []
        assert len(report.turn_latencies_ms) == 1

        url = gateway.url + "/voice/plivo"
        fields = form(str(uuid.uuid4()))
        good = v3_signature(AUTH_TOKEN, url, fields, "n1")
        async with aiohttp.ClientSession() as http:
            for headers in ({},  # unsigned
                            {"X-Plivo-Signature-V3": good},  # no nonce
                            {"X-Plivo-Signature-V3": v3_signature("another-token", url, fields, "n1"),
                             "X-Plivo-Signature-V3-Nonce": "n1"},
                            {"X-Plivo-Signature-V3": good, "X-Plivo-Signature-V3-Nonce": "n2"},  # stale nonce
                            {"X-Plivo-Signature-V3": v3_signature(AUTH_TOKEN, url, form(str(uuid.uuid4())), "n1"),
                             "X-Plivo-Signature-V3-Nonce": "n1"}):  # another call's fields
                async with http.post(url, data=fields, headers=headers) as resp:
                    assert resp.status == 403
            # Signed right, also as one of several comma-separated signatures.
            for value in (good, "bm90IGl0=," + good):
                async with http.post(url, data=fields, headers={"X-Plivo-Signature-V3": value,
                                                                "X-Plivo-Signature-V3-Nonce": "n1"}) as resp:
                    assert resp.status == 200 and "<Stream " in await resp.text()
    finally:
        await runner.cleanup()
    assert sample("gateway_webhook_requests_total", {"result": "forbidden"}) == forbidden + 5


async def test_a_call_uuid_is_required(gateway: Gateway):
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/voice/plivo", data=form(str(uuid.uuid4()))) as resp:
            assert resp.status == 200 and resp.content_type == "application/xml"
            root = ET.fromstring(await resp.text())
        stream = root.find("./Stream")
        assert stream is not None and (stream.text or "").endswith("/media/plivo")
        assert stream.get("contentType") == "audio/x-mulaw;rate=8000" and stream.get("bidirectional") == "true"
        for bad in ("CA" + "ab" * 16, "", "not-a-uuid"):
            async with http.post(gateway.url + "/voice/plivo", data=form(bad)) as resp:
                assert resp.status == 400 and "CallUUID" in await resp.text()
    assert gateway.echo.sessions == []


async def test_malformed_frames_are_counted_under_plivo_and_ignored(gateway: Gateway):
    kinds = ["invalid_json", "unknown_event", "binary_frame", "unknown_stream", "invalid_media", "missing_event",
             "invalid_mark"]
    before = {k: sample("gateway_carrier_protocol_errors_total", {**CARRIER, "kind": k}) for k in kinds}
    twilio_before = {k: sample("gateway_carrier_protocol_errors_total", {"carrier": "twilio", "kind": k})
                     for k in kinds}
    caller = PlivoCaller(gateway.url)
    await caller.connect()
    await caller.send_raw("{not json")
    await caller.send_raw('{"event":"dance"}')
    await caller.send_raw(b"\x00\x01binary")
    other = str(uuid.uuid4())
    await caller.send_raw('{"event":"media","streamId":"' + other + '","media":{"payload":"//8="}}')
    await caller.send_raw('{"event":"media","media":{}}')
    await caller.send_raw('{"no_event":true}')
    await caller.send_raw('{"event":"playedStream","streamId":"' + caller.stream_sid + '"}')
    report = await caller.speak(CallScript(utterances=[speech_like(500, seed=8)]))
    assert len(report.turn_latencies_ms) == 1  # the call went on and was answered
    assert report.closed_by == "caller"
    for k in kinds:
        assert sample("gateway_carrier_protocol_errors_total", {**CARRIER, "kind": k}) == before[k] + 1, k
        assert sample("gateway_carrier_protocol_errors_total", {"carrier": "twilio", "kind": k}) == twilio_before[k]


async def raw_stream(gateway: Gateway, extra_headers: str | None, call_uuid: str) -> tuple[int | None, str]:
    """Open /media/plivo and send Plivo's start with the given extra_headers."""
    media = gateway.url.replace("http", "ws", 1) + "/media/plivo"
    async with aiohttp.ClientSession() as http, http.ws_connect(media) as ws:
        start = {"event": "start", "sequenceNumber": 1, "start": {
            "callId": call_uuid, "streamId": str(uuid.uuid4()), "accountId": "MA" + "X" * 18,
            "tracks": ["inbound"], "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000}}}
        if extra_headers is not None:
            start["extra_headers"] = extra_headers
        await ws.send_str(orjson.dumps(start).decode())
        msg = await asyncio.wait_for(ws.receive(), 5.0)
        return ws.close_code, str(msg.extra or "")


async def test_the_stream_token_is_checked_before_any_upstream_session(gateway: Gateway):
    rejected = sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"})
    calls = {**CARRIER, "provider": "custom", "outcome": "rejected"}
    calls_before = sample("gateway_calls_total", calls)
    forged = b"v1.9999999999.nonce.forgedsignature".hex()
    code, reason = await raw_stream(gateway, f"token={forged}", str(uuid.uuid4()))
    assert code == 1008 and "token" in reason
    assert sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"}) == rejected + 1
    code, _ = await raw_stream(gateway, None, str(uuid.uuid4()))
    assert code == 1008
    # A real token, minted by the webhook for one call, does not open a stream for another.
    async with aiohttp.ClientSession() as http:
        async with http.post(gateway.url + "/voice/plivo", data=form(str(uuid.uuid4()))) as resp:
            stream = ET.fromstring(await resp.text()).find("./Stream")
    assert stream is not None
    code, _ = await raw_stream(gateway, stream.get("extraHeaders"), str(uuid.uuid4()))
    assert code == 1008
    assert gateway.echo.sessions == []
    assert sample("gateway_stream_tokens_rejected_total", {"reason": "bad_signature"}) == rejected + 2
    await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
    assert sample("gateway_calls_total", calls) == calls_before + 3


async def test_a_socket_closed_before_the_upstream_answered_is_abandoned(echo, dialect: str):
    """Plivo's hang-up is the socket closing, with no stop. Here the upstream never answers its handshake,
    so the call ends abandoned (the two-turn call above ends completed the same way)."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # accept the connection, never answer the WebSocket handshake
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gateway, runner = await start_gateway(echo, dialect, REALTIME_URL=f"ws://127.0.0.1:{port}/v1/realtime")
    abandoned = {**CARRIER, "provider": "custom", "outcome": "abandoned"}
    before = sample("gateway_calls_total", abandoned)
    try:
        caller = PlivoCaller(gateway.url)
        await caller.connect()
        await asyncio.sleep(0.1)
        await caller.send_stop()  # closes the socket
        await caller.close()
        assert caller.report.closed_by == "caller"
        await asyncio.wait_for(gateway.state.idle.wait(), 5.0)
    finally:
        await runner.cleanup()
        server.close()
    assert sample("gateway_calls_total", abandoned) == before + 1


async def test_the_call_command_places_a_plivo_call_through_a_served_gateway():
    """`python -m gateway call --carrier plivo` against `python -m gateway serve`, both real processes."""
    import signal
    import sys

    from .test_commands import clean_env, free_port, place_call, read_until

    def env(**extra: str) -> dict[str, str]:
        return {k: v for k, v in clean_env(**extra).items() if k != "PLIVO_AUTH_TOKEN" or k in extra}

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--env-file", "none",
        env=env(PORT=str(port), PLIVO_AUTH_TOKEN=AUTH_TOKEN),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[dict] = []
    try:
        assert proc.stdout is not None
        await read_until(proc.stdout, "gateway_listening", lines)
        warned = [line["carrier"] for line in lines if line.get("event") == "webhook_unauthenticated"]
        assert "plivo" not in warned and "twilio" in warned
        url = f"http://127.0.0.1:{port}"
        code, out = await place_call("--url", url, "--carrier", "plivo", "--turns", "1", env=env())
        assert code == 1 and out.splitlines()[1:] == [
            "webhook: HTTP 403",
            "refused: the webhook refused the call (HTTP 403): set --auth-token (or PLIVO_AUTH_TOKEN) to the "
            "gateway's PLIVO_AUTH_TOKEN"]
        code, out = await place_call("--url", url, "--carrier", "plivo", "--turns", "1", "--json",
                                     env=env(PLIVO_AUTH_TOKEN=AUTH_TOKEN))
        assert code == 0, out
        report = orjson.loads(out)
        assert len(report["turn_latencies_ms"]) == 1 and report["errors"] == []
        assert uuid.UUID(report["call_sid"])
        ended = await read_until(proc.stdout, "call_summary", lines)
        assert ended["outcome"] == "completed" and ended["carrier"] == "plivo"
        assert ended["call_sid"] == report["call_sid"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_fallback_reaches_plivo_as_a_signed_control_document(echo):
    """The upstream is unreachable: the gateway moves the live call to its fallback document through
    Plivo's Call API (aleg_url), and serves that document only with Plivo's signature and our token."""
    from tests.carriers.plivo.test_rest import AUTH_ID, FakePlivo

    fake = FakePlivo()
    app = web.Application()
    app.router.add_route("*", "/v1/Account/{auth_id}/Call/{call}/", fake.call)
    rest_runner = web.AppRunner(app)
    await rest_runner.setup()
    await web.TCPSite(rest_runner, "127.0.0.1", 0).start()
    fake.url = f"http://127.0.0.1:{rest_runner.addresses[0][1]}"
    from .test_commands import free_port

    port = free_port()
    public = f"http://127.0.0.1:{port}"  # what Plivo would reach; the signatures are over it
    gateway, runner = await start_gateway(
        echo, "ga", port=port, REALTIME_URL="ws://127.0.0.1:9/v1/realtime", UPSTREAM_CONNECT_RETRIES="0",
        PLIVO_AUTH_ID=AUTH_ID, PLIVO_AUTH_TOKEN="plivo-auth-token", PLIVO_API_BASE_URL=fake.url, PUBLIC_URL=public,
        FALLBACK_MESSAGE="We are sorry, please call back later.")
    served = sample("gateway_webhook_requests_total", {"result": "control_document"})
    try:
        caller = PlivoCaller(gateway.url, auth_token="plivo-auth-token")
        await caller.connect()
        assert await caller.wait_closed(5) is not None
        await caller.close()
        (request,) = fake.requests
        assert request["method"] == "POST" and request["path"].endswith(f"/Call/{caller.call_sid}/")
        aleg_url = request["body"]["aleg_url"]
        assert aleg_url.startswith(public + "/voice/plivo/control/")
        local = aleg_url
        fields = {"CallUUID": caller.call_sid, "CallStatus": "in-progress"}
        signed = {"X-Plivo-Signature-V3": v3_signature("plivo-auth-token", aleg_url, fields, "n9"),
                  "X-Plivo-Signature-V3-Nonce": "n9"}
        async with aiohttp.ClientSession() as http:
            async with http.post(local, data=fields, headers=signed) as resp:
                assert resp.status == 200 and resp.content_type == "application/xml"
                document = ET.fromstring(await resp.text())
            assert [(e.tag, e.text) for e in document] == [("Speak", "We are sorry, please call back later."),
                                                          ("Hangup", None)]
            async with http.post(local, data=fields) as resp:  # not signed by Plivo
                assert resp.status == 403
            token = aleg_url.rsplit("/", 1)[1]
            forged = local.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
            async with http.post(forged, data=fields, headers=signed) as resp:
                assert resp.status == 403
            async with http.post(gateway.url + "/voice/twilio/control/" + token, data=fields) as resp:
                assert resp.status == 404  # Twilio takes inline TwiML: it fetches no documents
        assert sample("gateway_webhook_requests_total", {"result": "control_document"}) == served + 1
    finally:
        await runner.cleanup()
        await rest_runner.cleanup()
