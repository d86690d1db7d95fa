"""Signed call reports: the header checked by a verifier written here from the documented scheme alone
(hmac + hashlib, not the code under test), the settings, and a signed post received over loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import orjson
import pytest
from aiohttp import web

from gateway.config import ConfigError, load_settings
from gateway.observability.signing import HEADER, signature
from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller
from gateway.sim.echo import EchoLine

from ..e2e.conftest import start_gateway

SECRET = "report-signing-secret-for-tests"
TOLERANCE_S = 300


def verify(secret: str, body: bytes, header: str, now: float, tolerance_s: int = TOLERANCE_S) -> bool:
    """The receiver's check, as the README documents it."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", "")) and abs(now - int(fields["t"])) <= tolerance_s


def test_our_signature_verifies_and_a_tampered_or_old_one_does_not():
    body, now = b'{"call_sid":"CA1","outcome":"completed"}', 1_800_000_000
    header = signature(SECRET, body, now)
    assert header.startswith(f"t={now},v1=") and len(header.split("v1=")[1]) == 64
    assert verify(SECRET, body, header, now + 5)
    assert not verify(SECRET, body.replace(b"completed", b"abandoned"), header, now)  # tampered body
    assert not verify("another-secret-of-16+chars", body, header, now)  # another secret
    forged = header.replace(f"t={now}", f"t={now + 60}")  # a fresher timestamp on the old signature
    assert not verify(SECRET, body, forged, now + 60)
    old = signature(SECRET, body, now - TOLERANCE_S - 1)  # replayed too late
    assert not verify(SECRET, body, old, now)


def test_a_report_url_needs_a_secret_or_an_explicit_allowance():
    url = "https://reports.example.com/calls"
    with pytest.raises(ConfigError) as info:
        load_settings({"CALL_REPORT_URL": url})
    (error,) = info.value.errors
    assert "CALL_REPORT_SECRET" in error and "CALL_REPORT_ALLOW_UNSIGNED=true" in error
    assert load_settings({"CALL_REPORT_URL": url, "CALL_REPORT_ALLOW_UNSIGNED": "true"}).call_report_secret is None
    signed = load_settings({"CALL_REPORT_URL": url, "CALL_REPORT_SECRET": SECRET})
    assert signed.call_report_secret.reveal() == SECRET and SECRET in signed.secrets()  # redacted from logs
    assert SECRET not in repr(signed)


def test_report_secret_mistakes_are_named():
    with pytest.raises(ConfigError, match="CALL_REPORT_SECRET must be at least 16 characters long") as info:
        load_settings({"CALL_REPORT_URL": "https://r.example.com", "CALL_REPORT_SECRET": "short"})
    assert "short" not in info.value.describe()
    assert any("CALL_REPORT_SECRET is set but CALL_REPORT_URL is not" in w
               for w in load_settings({"CALL_REPORT_SECRET": SECRET}).warnings)


async def test_a_loopback_endpoint_receives_a_signed_report_after_a_call():
    received: list[tuple[bytes, str]] = []

    async def collect(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers.get(HEADER, "")))
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/reports", collect)
    runner = web.AppRunner(receiver)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    echo = EchoLine(pace=2.0)
    await echo.start()
    gw, gw_runner = await start_gateway(echo, "ga", CALL_REPORT_URL=f"http://127.0.0.1:{runner.addresses[0][1]}/reports",
                                        CALL_REPORT_SECRET=SECRET)
    try:
        report = await SimulatedCaller(gw.url).run(CallScript(utterances=[speech_like(500, seed=13)]))
        await asyncio.wait_for(gw.state.idle.wait(), 5)
        await asyncio.wait_for(gw.state.reports._queue.join(), 10)
    finally:
        await gw_runner.cleanup()
        await echo.stop()
        await runner.cleanup()
    ((body, header),) = received
    assert verify(SECRET, body, header, time.time())
    assert orjson.loads(body)["call_sid"] == report.call_sid
    assert not verify(SECRET, body + b" ", header, time.time())
