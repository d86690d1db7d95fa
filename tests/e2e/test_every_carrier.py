"""The same call scenarios for every carrier and both dialects, each through that carrier's own simulated
caller and the real app: two turns, barge-in with the truncation error bounded, the caller hanging up,
the upstream dropping, a forged or missing stream token, an unsigned webhook, malformed frames.

A carrier added to the registry without a case here fails `test_every_registered_carrier_has_a_case`.
Carrier-specific behaviour (their ids, signatures, markup, frame kinds) is tested in each carrier's
own e2e file; this file holds them to one standard.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.carriers.registry import CARRIERS
from gateway.sim.audio import speech_like
from gateway.sim.caller import CallRefused, CallScript, SimulatedCaller
from gateway.sim.plivo_caller import PlivoCaller
from gateway.sim.telnyx_caller import TelnyxCaller, public_key_of
from gateway.sim.vonage_caller import VonageCaller

from .conftest import Gateway, sample, start_gateway

SECRET = "carrier-signing-secret-for-tests"


@dataclass(frozen=True)
class Case:
    """How to call the gateway as one carrier."""

    caller: Callable[..., SimulatedCaller]  # (gateway_url, signed: bool) -> a simulated caller
    signing_env: dict[str, str]  # what makes the gateway verify this carrier's webhooks
    g711: bool = True  # the caller's audio reaches the upstream untouched (else converted)
    truncation_bound_ms: float = 20.0  # |truncate audio_end_ms - what the caller heard| at a barge-in
    extra_env: dict[str, str] = field(default_factory=dict)


def _twilio_like(carrier: str) -> Callable[..., SimulatedCaller]:
    def make(url: str, signed: bool = False) -> SimulatedCaller:
        return SimulatedCaller(url, carrier=carrier, auth_token=SECRET if signed else None)
    return make


def _plivo(url: str, signed: bool = False) -> SimulatedCaller:
    return PlivoCaller(url, auth_token=SECRET if signed else None)


TELNYX_KEY = Ed25519PrivateKey.generate()  # Telnyx signs with the account's key pair, not a shared secret


def _telnyx(url: str, signed: bool = False) -> SimulatedCaller:
    return TelnyxCaller(url, private_key=TELNYX_KEY if signed else None)


def _vonage(url: str, signed: bool = False) -> SimulatedCaller:
    return VonageCaller(url, auth_token=SECRET if signed else None)


CASES: dict[str, Case] = {
    "twilio": Case(_twilio_like("twilio"), {"TWILIO_AUTH_TOKEN": SECRET}),
    "signalwire": Case(_twilio_like("signalwire"), {"SIGNALWIRE_SIGNING_KEY": SECRET}),
    "plivo": Case(_plivo, {"PLIVO_AUTH_TOKEN": SECRET}),
    "telnyx": Case(_telnyx, {"TELNYX_PUBLIC_KEY": public_key_of(TELNYX_KEY)}),
    # L16 converted to and from 24 kHz; a mark over a held partial frame is echoed up to one 20 ms frame late
    # (tests/e2e/test_vonage.py), plus the loop's scheduling.
    "vonage": Case(_vonage, {"VONAGE_SIGNATURE_SECRET": SECRET}, g711=False, truncation_bound_ms=30.0),
}


@pytest.fixture(params=sorted(CASES))
def carrier(request: pytest.FixtureRequest) -> str:
    return request.param


def labels(carrier: str, **more: str) -> dict[str, str]:
    return {"carrier": carrier, **more}


def appended_audio(gateway: Gateway) -> bytes:
    session = gateway.echo.sessions[0]
    return b"".join(base64.b64decode(e["audio"]) for e in session.received
                    if e.get("type") == "input_audio_buffer.append")


def test_every_registered_carrier_has_a_case():
    assert sorted(CASES) == sorted(CARRIERS)


async def test_two_turns(gateway: Gateway, carrier: str, dialect: str):
    case = CASES[carrier]
    completed = labels(carrier, provider="custom", outcome="completed")
    before = sample("gateway_calls_total", completed)
    utterances = [speech_like(600, seed=1), speech_like(600, seed=2)]
    report = await case.caller(gateway.url).run(CallScript(utterances=utterances))
    assert report.errors == [] and report.webhook_status == 200
    assert len(report.turn_latencies_ms) == 2, report.events
    assert report.clears == [] and report.closed_by == "caller"
    assert report.media_ms_received >= 2 * 600  # each answer is the utterance played back
    session = gateway.echo.sessions[0]
    assert session.dialect == dialect and session.errors_sent == []
    if case.g711:  # passthrough: the caller's bytes are the upstream's bytes
        got = appended_audio(gateway)
        assert utterances[0][:4000] in got and utterances[1][:4000] in got
    await asyncio.wait_for(session.closed.wait(), 2.0)
    await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
    assert sample("gateway_calls_total", completed) == before + 1


async def test_barge_in_truncates_at_what_the_caller_heard(gateway: Gateway, carrier: str):
    case = CASES[carrier]
    script = CallScript(utterances=[speech_like(2000, seed=4), speech_like(500, seed=5)], barge_in_after_ms=700)
    report = await case.caller(gateway.url).run(script)
    assert report.errors == []
    assert len(report.clears) >= 1, report.events
    played = report.clears[0]["segment_played_ms"]
    session = gateway.echo.sessions[0]
    assert session.truncations, session.received
    first = session.truncations[0]
    assert first["accepted"], first
    assert abs(first["audio_end_ms"] - played) <= case.truncation_bound_ms, (first, played)
    assert all(t["accepted"] for t in session.truncations)


async def test_upstream_drop_ends_the_call_cleanly(echo, carrier: str, dialect: str):
    gateway, runner = await start_gateway(echo, dialect, UPSTREAM_MAX_RECONNECTS="0")
    errors = labels(carrier, provider="custom", outcome="upstream_error")
    before = sample("gateway_calls_total", errors)
    try:
        caller = CASES[carrier].caller(gateway.url)
        await caller.connect()
        session = await gateway.echo.wait_for_session(0)
        await session.wait_for_event("session.update")
        await session.close(1011, "server going away")
        assert await caller.wait_closed(5.0) is not None
        await caller.close()
        assert caller.report.closed_by == "gateway"
        await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
        assert gateway.state.calls == set()
    finally:
        await runner.cleanup()
    assert sample("gateway_calls_total", errors) == before + 1


@pytest.mark.parametrize("token", ["v1.9999999999.nonce.forgedsignature", None], ids=["forged", "missing"])
async def test_a_stream_without_its_token_gets_no_upstream_session(gateway: Gateway, carrier: str,
                                                                   token: str | None):
    rejected = labels(carrier, provider="custom", outcome="rejected")
    before = sample("gateway_calls_total", rejected)
    caller = CASES[carrier].caller(gateway.url)
    caller.forge_token(token)
    await caller.connect()
    assert await caller.wait_closed(5.0) == 1008
    await caller.close()
    assert gateway.echo.sessions == []  # refused before any upstream session
    await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
    assert sample("gateway_calls_total", rejected) == before + 1


async def test_unsigned_webhooks_are_refused_where_signing_is_configured(echo, carrier: str):
    case = CASES[carrier]
    gateway, runner = await start_gateway(echo, "ga", **case.signing_env)
    forbidden = sample("gateway_webhook_requests_total", {"result": "forbidden"})
    try:
        with pytest.raises(CallRefused, match="403"):
            await case.caller(gateway.url).connect()
        assert sample("gateway_webhook_requests_total", {"result": "forbidden"}) == forbidden + 1
        report = await case.caller(gateway.url, signed=True).run(CallScript(utterances=[speech_like(400, seed=7)]))
        assert report.errors == [] and len(report.turn_latencies_ms) == 1
    finally:
        await runner.cleanup()
    assert len(echo.sessions) == 1  # the refused call never reached the upstream


async def test_malformed_frames_are_counted_under_the_carrier_and_the_call_goes_on(gateway: Gateway, carrier: str):
    kinds = {"invalid_json": "{not json", "missing_event": '{"no_event":true}'}
    before: dict[str, Any] = {k: sample("gateway_carrier_protocol_errors_total", labels(carrier, kind=k))
                              for k in kinds}
    caller = CASES[carrier].caller(gateway.url)
    await caller.connect()
    for frame in kinds.values():
        await caller.send_raw(frame)
    report = await caller.speak(CallScript(utterances=[speech_like(500, seed=8)]))
    assert len(report.turn_latencies_ms) == 1 and report.closed_by == "caller"
    for k in kinds:
        assert sample("gateway_carrier_protocol_errors_total", labels(carrier, kind=k)) == before[k] + 1, k


async def test_the_callers_keys_reach_the_model(echo, carrier: str, dialect: str, tmp_path):
    """Each carrier's key press, in its own frame, decoded by its face: one message to the model per key."""
    tools = tmp_path / "tools.yaml"
    tools.write_text("dtmf: {mode: digit}\n")
    gateway, runner = await start_gateway(echo, dialect, TOOLS_FILE=str(tools), **CASES[carrier].extra_env)
    inbound = {"direction": "inbound"}
    before = sample("gateway_dtmf_keys_total", inbound)
    try:
        report = await CASES[carrier].caller(gateway.url).run(CallScript(utterances=[], keys="4#"))
        await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
    finally:
        await runner.cleanup()
    assert report.errors == [] and report.keys_turn == 0
    texts = [e["item"]["content"][0]["text"] for e in echo.sessions[0].received
             if e["type"] == "conversation.item.create"]
    assert texts == ["The caller pressed 4 on the keypad.", "The caller pressed # on the keypad."]
    assert report.answer_heard_after_ms[0] is not None  # the echo line read the last one back
    assert sample("gateway_dtmf_keys_total", inbound) == before + 2
