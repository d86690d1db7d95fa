"""Warm sessions at the doors: a signed webhook has one configured for its call, which the call's stream
claims (once, by its CallSid) and does not configure again; an unsigned webhook parks nothing; a parked
session no stream claims is closed when the stream token expires; a stream that needs another
configuration leaves it and claims from the pool. The real app, the simulated caller, the echo line."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.config import Agent
from gateway.realtime import dialect as shapes
from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller
from gateway.sim.telnyx_caller import TelnyxCaller, public_key_of

from ..e2e.conftest import AUTH_TOKEN, sample, start_gateway

GREETING = "Hello, how can I help?"


def parked(outcome: str) -> float:
    return sample("gateway_warm_upstream_parked_total", {"outcome": outcome})


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - pool and counters change without an event to wait on
            await asyncio.sleep(0.01)


def updates(session) -> list[dict]:
    return [e for e in session.received if e["type"] == "session.update"]


async def test_a_signed_webhook_configures_the_session_its_stream_claims(echo, dialect: str):
    gw, runner = await start_gateway(echo, dialect, TWILIO_AUTH_TOKEN=AUTH_TOKEN, WARM_UPSTREAM_SESSIONS="1",
                                     AGENT_GREETING=GREETING)
    before = {o: parked(o) for o in ("parked", "claimed", "expired")}
    try:
        warm = gw.state.warm
        assert warm is not None
        await until(lambda: warm.pool.idle == 1)
        caller = SimulatedCaller(gw.url, auth_token=AUTH_TOKEN)
        status, _ = await caller.webhook()
        assert status == 200 and caller.call_sid in warm.parked
        session = echo.sessions[0]
        await session.wait_for_event("session.update")  # configured before any stream
        await until(lambda: parked("parked") == before["parked"] + 1)
        # The stream (connect() posts the webhook again, as a carrier retry would: the same session).
        report = await caller.run(CallScript(utterances=[speech_like(500, seed=11)]))
        assert report.errors == []
        assert len(report.turn_latencies_ms) == 1 and report.media_ms_received > 500  # greeting + answer
        assert parked("claimed") == before["claimed"] + 1 and parked("expired") == before["expired"]
        assert len(updates(session)) == 1  # the webhook's: the call did not configure it again
        assert any(e["type"] == "input_audio_buffer.append" for e in session.received)  # the call's session
        greets = [e for e in session.received if e["type"] == "response.create"]
        assert greets and GREETING in greets[0]["response"]["instructions"]
        assert caller.call_sid not in warm.parked
        await until(lambda: warm.pool.idle == 1)
        assert len(echo.sessions) == 2  # the parked one and its refill: no call dialled out
    finally:
        await runner.cleanup()


async def test_an_unsigned_webhook_parks_nothing(echo, dialect: str):
    gw, runner = await start_gateway(echo, dialect, WARM_UPSTREAM_SESSIONS="1")
    before = sum(parked(o) for o in ("parked", "unavailable", "full", "failed"))
    try:
        warm = gw.state.warm
        assert warm is not None
        await until(lambda: warm.pool.idle == 1)
        caller = SimulatedCaller(gw.url)
        status, _ = await caller.webhook()
        assert status == 200
        await asyncio.sleep(0.1)  # give a wrongly started parking the time to show (not a timing assertion)
        assert warm.parked == {} and warm.pool.idle == 1
        assert echo.sessions[0].received == []
        assert sum(parked(o) for o in ("parked", "unavailable", "full", "failed")) == before
        await caller.close()
    finally:
        await runner.cleanup()


async def test_a_parked_session_no_stream_claims_is_closed_at_the_tokens_expiry(echo):
    gw, runner = await start_gateway(echo, "ga", TWILIO_AUTH_TOKEN=AUTH_TOKEN, WARM_UPSTREAM_SESSIONS="1",
                                     STREAM_TOKEN_TTL_S="1")
    expired = parked("expired")
    try:
        warm = gw.state.warm
        assert warm is not None
        await until(lambda: warm.pool.idle == 1)
        caller = SimulatedCaller(gw.url, auth_token=AUTH_TOKEN)
        assert (await caller.webhook())[0] == 200
        await caller.close()
        session = echo.sessions[0]
        await session.wait_for_event("session.update")
        await asyncio.wait_for(session.closed.wait(), 10.0)  # the token's lifetime, then closed
        assert parked("expired") == expired + 1
        assert warm.parked == {}
        await until(lambda: warm.pool.idle == 1)  # the pool itself is full again
    finally:
        await runner.cleanup()


async def test_a_stream_that_needs_another_configuration_leaves_the_parked_session(echo):
    gw, runner = await start_gateway(echo, "ga", WARM_UPSTREAM_SESSIONS="2")
    mismatch, hits = parked("mismatch"), sample("gateway_warm_upstream_claims_total", {"result": "hit"})
    try:
        warm = gw.state.warm
        assert warm is not None
        await until(lambda: warm.pool.idle == 2)
        caller = SimulatedCaller(gw.url)
        other_agent = shapes.session_update("ga", Agent(instructions="Another agent's instructions."))
        warm.park(caller.call_sid, other_agent, 60.0)
        warm.park("CA" + "0" * 32, other_agent, 60.0)  # another call's: not this stream's to take
        await until(lambda: all(e.task is not None and e.task.done() for e in warm.parked.values()))
        report = await caller.run(CallScript(utterances=[speech_like(500, seed=12)]))
        assert report.errors == [] and len(report.turn_latencies_ms) == 1
        assert parked("mismatch") == mismatch + 1
        assert list(warm.parked) == ["CA" + "0" * 32]
        # The call configured a session of the pool itself, with its own agent.
        assert sample("gateway_warm_upstream_claims_total", {"result": "hit"}) >= hits + 3
        used = [s for s in echo.sessions if any(e["type"] == "input_audio_buffer.append" for e in s.received)]
        assert len(used) == 1 and len(updates(used[0])) == 1
        assert "Another agent" not in updates(used[0])[0]["session"]["instructions"]
    finally:
        await runner.cleanup()
    assert all(s.closed.is_set() for s in echo.sessions)  # shutdown closed the parked and idle ones


AGENTS = """
default: support
agents:
  sales: {instructions: "Sales for {{to}}, caller {{from}}.", greeting: Sales here., voice: marin}
  support: {instructions: Support., voice: cedar}
  mini: {instructions: Mini., model: gpt-realtime-mini}
routes: {"+15005550001": sales, "+15005550009": mini}
"""


async def test_the_webhook_configures_the_session_for_the_dialed_numbers_agent(echo, tmp_path):
    (tmp_path / "agents.yaml").write_text(AGENTS)
    gw, runner = await start_gateway(echo, "ga", TWILIO_AUTH_TOKEN=AUTH_TOKEN, WARM_UPSTREAM_SESSIONS="1",
                                     AGENTS_FILE=str(tmp_path / "agents.yaml"))
    try:
        warm = gw.state.warm
        assert warm is not None
        await until(lambda: warm.pool.idle == 1)
        claimed = parked("claimed")
        caller = SimulatedCaller(gw.url, auth_token=AUTH_TOKEN, to="+15005550001")
        report = await caller.run(CallScript(utterances=[speech_like(400, seed=12)], lead_silence_ms=1500))
        assert report.errors == [] and parked("claimed") == claimed + 1
        (update,) = updates(echo.sessions[0])  # the webhook's, for the sales agent with the call's numbers
        assert update["session"]["instructions"] == "Sales for +15005550001, caller +15005550006."
        assert update["session"]["audio"]["output"]["voice"] == "marin"
        # An agent on another model than the pool's: nothing parked, the call dials out for its own model.
        await until(lambda: warm.pool.idle == 1)
        parked_before = parked("parked")
        caller = SimulatedCaller(gw.url, auth_token=AUTH_TOKEN, to="+15005550009")
        report = await caller.run(CallScript(utterances=[speech_like(400, seed=13)]))
        assert report.errors == [] and parked("parked") == parked_before
        assert echo.sessions[-1].query["model"] == "gpt-realtime-mini"
    finally:
        await runner.cleanup()


async def test_a_telnyx_a_law_call_finds_its_session_configured_for_a_law(echo):
    # The webhook configures the codec the carrier's answer names (TELNYX_CODEC), not the carrier's first.
    key = Ed25519PrivateKey.generate()
    gw, runner = await start_gateway(echo, "ga", TELNYX_PUBLIC_KEY=public_key_of(key), TELNYX_CODEC="PCMA",
                                     WARM_UPSTREAM_SESSIONS="1")
    try:
        warm = gw.state.warm
        assert warm is not None
        await until(lambda: warm.pool.idle == 1)
        claimed, mismatched = parked("claimed"), parked("mismatch")
        caller = TelnyxCaller(gw.url, private_key=key, codec="PCMA")
        report = await caller.run(CallScript(utterances=[speech_like(400, seed=14)]))
        assert report.errors == []
        assert parked("claimed") == claimed + 1 and parked("mismatch") == mismatched
        (update,) = updates(echo.sessions[0])
        assert update["session"]["audio"]["input"]["format"] == {"type": "audio/pcma"}
    finally:
        await runner.cleanup()
