"""A call through the real app: two turns, exact barge-in, endings; in both dialects."""

from __future__ import annotations

import asyncio
import base64

from gateway.sim.audio import speech_like
from gateway.sim.caller import CallScript, SimulatedCaller

from .conftest import Gateway, sample, start_gateway


async def test_full_call_with_two_turns(gateway: Gateway, dialect: str):
    calls_before = sample("gateway_calls_total", {"carrier": "twilio", "provider": "custom", "outcome": "completed"})
    caller = SimulatedCaller(gateway.url)
    report = await caller.run(CallScript(utterances=[speech_like(600, seed=1), speech_like(600, seed=2)]))
    assert report.errors == []
    assert report.webhook_status == 200
    assert len(report.turn_latencies_ms) == 2, report.events
    assert report.clears == []
    # Each answer is the utterance played back: about 600 ms of speech plus the VAD's padding.
    assert report.media_ms_received >= 2 * 600
    assert len(report.heard) / 8 >= 2 * 600
    assert report.closed_by == "caller"

    session = gateway.echo.sessions[0]
    assert session.dialect == dialect
    assert session.errors_sent == []  # our session.update was valid in this dialect
    updates = [e for e in session.received if e["type"] == "session.update"]
    assert len(updates) == 1
    # `stop` closed the upstream session within a second.
    await asyncio.wait_for(session.closed.wait(), 1.0)
    await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
    assert sample("gateway_calls_total", {"carrier": "twilio", "provider": "custom",
                                          "outcome": "completed"}) == calls_before + 1


async def test_audio_passes_through_untouched(gateway: Gateway):
    caller = SimulatedCaller(gateway.url)
    utterance = speech_like(500, seed=3)
    report = await caller.run(CallScript(utterances=[utterance]))
    assert report.errors == []
    session = gateway.echo.sessions[0]
    sent_b64 = [e["audio"] for e in session.received if e["type"] == "input_audio_buffer.append"]
    media_out = [m["media"]["payload"] for m in caller.received if m.get("event") == "media"]
    deltas = [e["delta"] for e in session.sent if e["type"].endswith("audio.delta")]
    # What the caller sent is what the upstream got, string for string; and back.
    assert sent_b64 and all(len(p) == 216 for p in sent_b64)
    assert utterance[:8000] in b"".join(base64.b64decode(p) for p in sent_b64)
    assert media_out == deltas


async def test_barge_in_truncates_at_what_the_caller_heard(gateway: Gateway):
    caller = SimulatedCaller(gateway.url)
    script = CallScript(utterances=[speech_like(2000, seed=4), speech_like(500, seed=5)], barge_in_after_ms=700)
    report = await caller.run(script)
    assert report.errors == []
    assert len(report.clears) >= 1, report.events
    played = report.clears[0]["segment_played_ms"]
    session = gateway.echo.sessions[0]
    truncations = [t for t in session.truncations]
    assert truncations, session.received
    first = truncations[0]
    assert first["accepted"], first
    assert abs(first["audio_end_ms"] - played) <= 20, (first, played)
    assert all(t["accepted"] for t in truncations)
    assert not [e for e in session.errors_sent if "shorter" in (e.get("error") or {}).get("message", "")]


async def test_upstream_dropping_ends_the_call_cleanly_without_reconnects(echo, dialect: str):
    """With UPSTREAM_MAX_RECONNECTS=0 a dropped session ends the call (tests/resilience: the reconnects)."""
    gateway, runner = await start_gateway(echo, dialect, UPSTREAM_MAX_RECONNECTS="0")
    try:
        await _upstream_drop_ends_the_call(gateway)
    finally:
        await runner.cleanup()


async def _upstream_drop_ends_the_call(gateway: Gateway) -> None:
    before = sample("gateway_calls_total", {"carrier": "twilio", "provider": "custom", "outcome": "upstream_error"})
    caller = SimulatedCaller(gateway.url)
    await caller.connect()
    session = await gateway.echo.wait_for_session(0)
    await session.wait_for_event("session.update")
    await session.close(1011, "server going away")
    code = await caller.wait_closed(5.0)
    await caller.close()
    assert code == 1000
    assert caller.report.closed_by == "gateway"
    await asyncio.wait_for(gateway.state.idle.wait(), 2.0)
    assert sample("gateway_calls_total", {"carrier": "twilio", "provider": "custom",
                                          "outcome": "upstream_error"}) == before + 1


async def test_fatal_upstream_error_ends_the_call(gateway: Gateway):
    caller = SimulatedCaller(gateway.url)
    await caller.connect()
    session = await gateway.echo.wait_for_session(0)
    await session.wait_for_event("session.update")
    await session.send_error("insufficient_quota", "You exceeded your current quota.")
    assert await caller.wait_closed(5.0) == 1000
    await caller.close()
    await asyncio.wait_for(session.closed.wait(), 2.0)


async def test_benign_upstream_error_keeps_the_call(gateway: Gateway):
    caller = SimulatedCaller(gateway.url)
    await caller.connect()
    session = await gateway.echo.wait_for_session(0)
    await session.wait_for_event("session.update")
    await session.send_error("conversation_already_has_active_response", "Conversation already has an active "
                             "response")
    report = await caller.speak(CallScript(utterances=[speech_like(500, seed=6)]))
    assert len(report.turn_latencies_ms) == 1
    assert not session.closed.is_set() or report.closed_by == "caller"
