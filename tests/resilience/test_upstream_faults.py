"""Upstream faults: a session killed mid-answer, a handshake that never completes or is refused, error
events, reconnects running out, the session duration cap. Each with another call going on beside it."""

from __future__ import annotations

import asyncio

import pytest

from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller
from gateway.sim.echo import EchoLine

from .conftest import (
    AUTH_TOKEN,
    LONG_BYSTANDER,
    FaultyUpstream,
    assert_unaffected,
    bystander,
    eventually,
    no_leaks,
    sample,
    start_gateway,
    tasks_now,
)

APOLOGY = "<Say>Sorry, our assistant is not available right now. Please try again later.</Say><Hangup />"
FAST_RETRIES = {"UPSTREAM_CONNECT_TIMEOUT_S": "0.5", "UPSTREAM_CONNECT_RETRIES": "2",
                "UPSTREAM_RETRY_BACKOFF_S": "0.05"}


def outcome(name: str) -> float:
    return sample("gateway_calls_total", {"carrier": "twilio", "provider": "custom", "outcome": name})


def restored(session) -> list[tuple[str, str, str]]:
    """(role, part type, text) of the conversation items a session was given."""
    out = []
    for event in session.received:
        if event["type"] == "conversation.item.create":
            part = event["item"]["content"][0]
            out.append((event["item"]["role"], part["type"], part["text"]))
    return out


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_upstream_killed_mid_answer_is_reconnected_and_the_caller_answered_next_turn(echo, faulty, dialect):
    gw, runner = await start_gateway(echo, dialect, REALTIME_URL=faulty.url, INPUT_TRANSCRIPTION_MODEL="whisper-1")
    try:
        baseline = tasks_now()
        reconnects = sample("gateway_upstream_reconnects_total", {"reason": "closed"})
        completed = outcome("completed")
        caller = SimulatedCaller(gw.url)
        script = CallScript(utterances=[speech_like(2500, seed=41), speech_like(500, seed=42)],
                            idle_before_next_ms=400, hangup_after_idle_ms=300)
        faulted = asyncio.create_task(caller.run(script))
        first = await echo.wait_for_session(0)
        await first.wait_for_event("input_audio_buffer.append", timeout=10, count=100)
        other = bystander(gw, script=LONG_BYSTANDER)  # its turns span the fault
        await echo.wait_for_session(1)
        await eventually(lambda: caller.report.frames_received >= 15, 10, "half the answer has played")
        faulty.kill(0)  # TCP reset mid-answer, no close frame

        report = await faulted
        assert report.errors == [], report.errors
        assert report.clears, "the lost answer was cleared from the caller's playback"
        assert len(report.turn_latencies_ms) == 2  # the next turn is answered by the new session
        second = echo.sessions[2]
        assert second.received[0]["type"] == "session.update"
        text_part = "output_text" if dialect == "ga" else "text"
        items = restored(second)
        assert [(role, kind) for role, kind, _ in items] == [("user", "input_text"), ("assistant", text_part)]
        assert items[0][2] == echo_transcript(first)  # the caller's words, from the first session's transcript
        assert items[1][2].endswith("…")  # the answer as far as the caller heard it
        assert second.errors_sent == []
        assert sample("gateway_upstream_reconnects_total", {"reason": "closed"}) == reconnects + 1
        assert_unaffected(await other)
        await no_leaks(gw, baseline)
        assert outcome("completed") == completed + 2
    finally:
        await runner.cleanup()


def echo_transcript(session) -> str:
    (done,) = [e for e in session.sent if e["type"] == "conversation.item.input_audio_transcription.completed"][:1]
    return done["transcript"]


async def test_handshake_never_answered_is_retried_then_the_caller_hears_the_apology(echo, faulty, twilio_rest):
    gw, runner = await start_gateway(echo, "ga", REALTIME_URL=faulty.url, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                                     TWILIO_API_BASE_URL=twilio_rest.url, **FAST_RETRIES)
    try:
        baseline = tasks_now()
        retries = sample("gateway_upstream_connect_retries_total", {"provider": "custom"})
        failures = sample("gateway_upstream_connect_failures_total", {"provider": "custom"})
        fallbacks = sample("gateway_fallbacks_total", {"result": "redirected"})
        upstream_errors = outcome("upstream_error")
        other = bystander(gw, AUTH_TOKEN)
        await (await echo.wait_for_session(0)).wait_for_event("session.update")
        faulty.mode = "silent"  # new connections are accepted and never answered

        caller = SimulatedCaller(gw.url, auth_token=AUTH_TOKEN)
        await caller.connect()
        assert await caller.wait_closed(10) == 1000
        await caller.close()
        assert len(faulty.connections) == 1 + 3  # the bystander's, then three attempts
        assert twilio_rest.requests == [{
            "account": caller.account_sid, "call": caller.call_sid, "user": caller.account_sid,
            "password": AUTH_TOKEN, "twiml": twilio_rest.requests[0]["twiml"]}]
        assert APOLOGY in twilio_rest.requests[0]["twiml"]
        assert sample("gateway_upstream_connect_retries_total", {"provider": "custom"}) == retries + 2
        assert sample("gateway_upstream_connect_failures_total", {"provider": "custom"}) == failures + 1
        assert sample("gateway_fallbacks_total", {"result": "redirected"}) == fallbacks + 1
        assert_unaffected(await other)
        await no_leaks(gw, baseline)
        assert outcome("upstream_error") == upstream_errors + 1
    finally:
        await runner.cleanup()


async def test_handshake_refused_401_is_not_retried_and_the_call_is_transferred(echo, faulty, twilio_rest):
    account, key = "AC" + "a1" * 16, "SK" + "b2" * 16
    gw, runner = await start_gateway(
        echo, "ga", REALTIME_URL=faulty.url, TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_API_BASE_URL=twilio_rest.url,
        TWILIO_ACCOUNT_SID=account, TWILIO_API_KEY_SID=key, TWILIO_API_KEY_SECRET="api-key-secret-123456",
        FALLBACK_NUMBER="+14155550100", **FAST_RETRIES)
    try:
        baseline = tasks_now()
        retries = sample("gateway_upstream_connect_retries_total", {"provider": "custom"})
        other = bystander(gw, AUTH_TOKEN)
        await (await echo.wait_for_session(0)).wait_for_event("session.update")
        faulty.mode = "reject"
        caller = SimulatedCaller(gw.url, auth_token=AUTH_TOKEN)
        await caller.connect()
        assert await caller.wait_closed(10) == 1000
        await caller.close()
        assert len(faulty.connections) == 2  # one attempt: a 401 is final
        assert sample("gateway_upstream_connect_retries_total", {"provider": "custom"}) == retries
        (request,) = twilio_rest.requests
        assert (request["account"], request["user"], request["password"]) == (account, key, "api-key-secret-123456")
        assert "<Dial>+14155550100</Dial>" in request["twiml"]
        assert_unaffected(await other)
        await no_leaks(gw, baseline)
    finally:
        await runner.cleanup()


async def test_without_rest_credentials_the_stream_is_just_closed(echo, faulty):
    gw, runner = await start_gateway(echo, "ga", REALTIME_URL=faulty.url, **FAST_RETRIES)
    try:
        baseline = tasks_now()
        unconfigured = sample("gateway_fallbacks_total", {"result": "unconfigured"})
        other = bystander(gw)
        await (await echo.wait_for_session(0)).wait_for_event("session.update")
        faulty.mode = "silent"
        caller = SimulatedCaller(gw.url)
        await caller.connect()
        assert await caller.wait_closed(10) == 1000
        await caller.close()
        assert sample("gateway_fallbacks_total", {"result": "unconfigured"}) == unconfigured + 1
        assert_unaffected(await other)
        await no_leaks(gw, baseline)
    finally:
        await runner.cleanup()


async def test_the_fallback_is_seen_through_when_twilio_ends_the_stream_before_answering(echo, faulty,
                                                                                         twilio_rest):
    """Redirecting a call stops its stream; Twilio may close the socket before its REST answer arrives."""
    gw, runner = await start_gateway(echo, "ga", REALTIME_URL=faulty.url, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                                     TWILIO_API_BASE_URL=twilio_rest.url, UPSTREAM_CONNECT_TIMEOUT_S="0.5",
                                     UPSTREAM_CONNECT_RETRIES="0")
    try:
        baseline = tasks_now()
        redirected = sample("gateway_fallbacks_total", {"result": "redirected"})
        faulty.mode = "silent"
        twilio_rest.answer_when = asyncio.Event()
        caller = SimulatedCaller(gw.url, auth_token=AUTH_TOKEN)
        await caller.connect()
        await asyncio.wait_for(twilio_rest.received.wait(), 5)
        await caller.send_stop()  # the stream ends first ...
        await caller.close()
        await eventually(lambda: all(s.ws.closed for s in gw.state.calls), 5, "the gateway closed the stream")
        twilio_rest.answer_when.set()  # ... then Twilio's REST answer comes
        await no_leaks(gw, baseline)
        assert sample("gateway_fallbacks_total", {"result": "redirected"}) == redirected + 1
    finally:
        await runner.cleanup()


async def test_fatal_error_event_ends_the_call_with_the_apology(echo, twilio_rest):
    gw, runner = await start_gateway(echo, "ga", TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_API_BASE_URL=twilio_rest.url)
    try:
        baseline = tasks_now()
        upstream_errors = outcome("upstream_error")
        caller = SimulatedCaller(gw.url, auth_token=AUTH_TOKEN)
        await caller.connect()
        session = await echo.wait_for_session(0)
        await session.wait_for_event("session.update")
        other = bystander(gw, AUTH_TOKEN)
        await echo.wait_for_session(1)
        await session.send_error("invalid_api_key", "Incorrect API key provided.", type="authentication_error")
        assert await caller.wait_closed(5) == 1000
        await caller.close()
        assert [r["call"] for r in twilio_rest.requests] == [caller.call_sid]
        assert APOLOGY in twilio_rest.requests[0]["twiml"]
        await asyncio.wait_for(session.closed.wait(), 2)
        assert_unaffected(await other)
        await no_leaks(gw, baseline)
        assert outcome("upstream_error") == upstream_errors + 1
    finally:
        await runner.cleanup()


async def test_benign_error_keeps_the_call_and_server_error_reconnects(echo):
    gw, runner = await start_gateway(echo, "ga")
    try:
        baseline = tasks_now()
        reconnects = sample("gateway_upstream_reconnects_total", {"reason": "server_error"})
        caller = SimulatedCaller(gw.url)
        await caller.connect()
        session = await echo.wait_for_session(0)
        await session.wait_for_event("session.update")
        other = bystander(gw)
        await echo.wait_for_session(1)
        await session.send_error("conversation_already_has_active_response", "Conversation already has an "
                                 "active response in progress")
        await session.send_error(None, "The server had an error while processing your request.",
                                 type="server_error")
        replacement = await echo.wait_for_session(2)
        await replacement.wait_for_event("session.update")
        report = await caller.speak(CallScript(utterances=[speech_like(500, seed=43)], lead_silence_ms=0))
        assert report.errors == [] and len(report.turn_latencies_ms) == 1
        await asyncio.wait_for(session.closed.wait(), 2)
        assert sample("gateway_upstream_reconnects_total", {"reason": "server_error"}) == reconnects + 1
        assert_unaffected(await other)
        await no_leaks(gw, baseline)
    finally:
        await runner.cleanup()


async def test_when_reconnects_run_out_the_call_falls_back(echo, faulty, twilio_rest):
    gw, runner = await start_gateway(echo, "ga", REALTIME_URL=faulty.url, UPSTREAM_MAX_RECONNECTS="1",
                                     TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_API_BASE_URL=twilio_rest.url)
    try:
        baseline = tasks_now()
        caller = SimulatedCaller(gw.url, auth_token=AUTH_TOKEN)
        await caller.connect()
        await (await echo.wait_for_session(0)).wait_for_event("session.update")
        other = bystander(gw, AUTH_TOKEN)
        await (await echo.wait_for_session(1)).wait_for_event("session.update")
        faulty.kill(0)
        await (await echo.wait_for_session(2)).wait_for_event("session.update")  # reconnected
        faulty.kill(2)
        assert await caller.wait_closed(5) == 1000
        await caller.close()
        assert [r["call"] for r in twilio_rest.requests] == [caller.call_sid]
        assert_unaffected(await other)
        await no_leaks(gw, baseline)
    finally:
        await runner.cleanup()


async def test_sessions_are_renewed_between_turns_before_the_duration_cap():
    echo = EchoLine(pace=2.0, delta_ms=100, max_session_s=3.0)  # the cap: session_expired after 3 s
    await echo.start()
    gw, runner = await start_gateway(echo, "ga", SESSION_MAX_S="1", INPUT_TRANSCRIPTION_MODEL="whisper-1")
    try:
        baseline = tasks_now()
        recycles = sample("gateway_upstream_reconnects_total", {"reason": "recycle"})
        script = CallScript(utterances=[speech_like(500, seed=50 + i) for i in range(3)], lead_silence_ms=200,
                            idle_before_next_ms=700, hangup_after_idle_ms=300)
        report = await SimulatedCaller(gw.url).run(script)  # about 5 s: longer than the cap
        assert report.errors == [], report.errors
        assert len(report.turn_latencies_ms) == 3 and report.clears == []  # no turn was cut
        assert len(echo.sessions) >= 2
        assert all(not s.errors_sent for s in echo.sessions), [s.errors_sent for s in echo.sessions]
        # Each new session got the conversation so far.
        later = echo.sessions[-1]
        roles = [role for role, _, _ in restored(later)]
        assert roles[:2] == ["user", "assistant"] and len(roles) >= 2
        assert sample("gateway_upstream_reconnects_total", {"reason": "recycle"}) >= recycles + 1
        await no_leaks(gw, baseline)
    finally:
        await runner.cleanup()
        await echo.stop()


async def test_the_faulty_upstream_fixture_pipes_by_default(faulty: FaultyUpstream, echo):
    """The proxy itself: a plain call through it works like a direct one."""
    gw, runner = await start_gateway(echo, "ga", REALTIME_URL=faulty.url)
    try:
        report = await bystander(gw)
        assert_unaffected(report)
        assert len(faulty.connections) == 1
    finally:
        await runner.cleanup()
