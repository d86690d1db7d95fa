"""The longest a caller waits in silence: one deadline for the first session to answer, whatever the
handshake attempts; and a caller who gives up first is counted as such (abandoned), over real sockets."""

from __future__ import annotations

import asyncio

from gateway.sim.caller import SimulatedCaller

from .conftest import AUTH_TOKEN, assert_unaffected, bystander, no_leaks, sample, start_gateway, tasks_now
from .test_upstream_faults import APOLOGY, outcome


async def test_an_upstream_that_never_answers_the_handshake_gets_the_fallback_at_the_deadline(echo, faulty,
                                                                                               twilio_rest):
    # Each handshake attempt may take 10 s and there are 3 of them: without the deadline, 30 s of silence.
    gw, runner = await start_gateway(echo, "ga", REALTIME_URL=faulty.url, TWILIO_AUTH_TOKEN=AUTH_TOKEN,
                                     TWILIO_API_BASE_URL=twilio_rest.url, UPSTREAM_READY_TIMEOUT_S="1",
                                     UPSTREAM_CONNECT_TIMEOUT_S="10", UPSTREAM_CONNECT_RETRIES="2")
    try:
        baseline = tasks_now()
        failures = sample("gateway_upstream_connect_failures_total", {"provider": "custom"})
        upstream_errors = outcome("upstream_error")
        other = bystander(gw, AUTH_TOKEN)
        await (await echo.wait_for_session(0)).wait_for_event("session.update")
        faulty.mode = "silent"  # accepted, never answered
        caller = SimulatedCaller(gw.url, auth_token=AUTH_TOKEN)
        await caller.connect()
        assert await caller.wait_closed(5) == 1000  # well before one 10 s attempt could have ended
        await caller.close()
        assert len(faulty.connections) == 2  # the bystander's, then the one attempt the deadline cut short
        (request,) = twilio_rest.requests
        assert request["call"] == caller.call_sid and APOLOGY in request["twiml"]
        assert sample("gateway_upstream_connect_failures_total", {"provider": "custom"}) == failures + 1
        assert outcome("upstream_error") == upstream_errors + 1
        assert_unaffected(await other)
        await no_leaks(gw, baseline)
    finally:
        await runner.cleanup()


async def test_a_caller_who_hangs_up_before_the_agent_answered_is_abandoned_not_completed(echo, faulty):
    gw, runner = await start_gateway(echo, "ga", REALTIME_URL=faulty.url, UPSTREAM_READY_TIMEOUT_S="30")
    try:
        failures = sample("gateway_upstream_connect_failures_total", {"provider": "custom"})
        abandoned, completed = outcome("abandoned"), outcome("completed")
        faulty.mode = "silent"
        caller = SimulatedCaller(gw.url)
        await caller.connect()
        await asyncio.sleep(0.3)
        await caller.send_stop()  # Twilio's stop: the caller hung up
        await caller.close()
        async with asyncio.timeout(5):
            while outcome("abandoned") == abandoned:  # noqa: ASYNC110 - the summary is written as the call ends
                await asyncio.sleep(0.01)
        assert outcome("completed") == completed
        assert sample("gateway_upstream_connect_failures_total", {"provider": "custom"}) == failures + 1
    finally:
        await runner.cleanup()
