"""SessionKeeping, through Call: the rate limit and carrier violations, losing and replacing the upstream
session with backoff, the send-stall watch and renewing the session between turns; exact, on a fake clock.

Stalls are counted by the I/O layer when it performs an `Abort`, so here they are seen as `Abort` actions."""

import base64

import pytest

from gateway.core.call import Call
from gateway.core.events import (
    CARRIER,
    UPSTREAM,
    Abort,
    AppendAudio,
    AudioDelta,
    AudioDone,
    ClearPlayback,
    ConfigureSession,
    Greet,
    Hangup,
    ItemAdded,
    Note,
    ProtocolViolation,
    Reconnect,
    ResponseCreated,
    ResponseDone,
    RestoreConversation,
    SendMark,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TranscriptDelta,
    TranscriptDone,
)

RECYCLE = Reconnect("recycle", "session renewed before its duration cap", 0.0)


def audio(ms: int) -> str:
    return base64.b64encode(b"\xff" * (8 * ms)).decode()


def ready_call(**kw) -> Call:
    call = Call(**kw)
    call.upstream_opened(0)
    return call


def tick(call: Call, now: float, *, carrier: bool = False, upstream: bool = False) -> tuple:
    return call.tick(now, carrier_backed_up=carrier, upstream_backed_up=upstream)


def recycled(actions: tuple, turns: int) -> bool:
    return actions == (Note("session_recycle", fields={"turns": turns}), RECYCLE)


def answer(call: Call, rid: str, item: str, text: str, ms: int, now: float) -> list[str]:
    """A whole answer sent at `now`, as one chunk; returns the marks to echo."""
    call.upstream_event(ResponseCreated(rid), now)
    call.upstream_event(ItemAdded(item, "assistant"), now)
    call.upstream_event(TranscriptDelta(item, text), now)
    actions = call.upstream_event(AudioDelta(rid, item, 0, audio(ms)), now)
    actions += call.upstream_event(AudioDone(item), now)
    call.upstream_event(TranscriptDone("assistant", item, text), now)
    call.upstream_event(ResponseDone(rid, "completed"), now)
    return [a.name for a in actions if isinstance(a, SendMark)]


# --- carrier side: rate limit and violations -------------------------------------------------------


def test_caller_audio_over_the_frame_rate_is_dropped_counted_and_noted_once():
    call = ready_call(max_frames_per_second=50)
    frame = audio(20)
    out = [call.carrier_audio(frame, i * 10) for i in range(60)]  # 60 frames within 600 ms
    assert out[:50] == [(AppendAudio(frame),)] * 50
    (note,) = out[50]
    assert (note.event, note.level, note.fields["max_frames_per_second"]) == ("carrier_rate_limited", "warning", 50)
    assert out[51:] == [()] * 9
    assert call.stats.frames_rate_limited == 10
    assert (call.stats.frames_in, call.stats.audio_in_ms) == (50, 1000.0)  # dropped audio is not counted in
    # The next window starts at the first frame at or after 1000 ms; its excess is only counted.
    out = [call.carrier_audio(frame, 1000 + i * 10) for i in range(55)]
    assert out[:50] == [(AppendAudio(frame),)] * 50 and out[50:] == [()] * 5
    assert call.stats.frames_rate_limited == 15 and call.stats.frames_in == 100


def test_a_caller_at_exactly_the_frame_rate_loses_nothing():
    call = ready_call(max_frames_per_second=50)
    assert all(call.carrier_audio(audio(20), i * 20) for i in range(500))
    assert call.stats.frames_rate_limited == 0 and call.stats.frames_in == 500


def test_rate_limited_audio_is_not_buffered_for_the_upstream():
    call = Call(max_frames_per_second=2)
    assert call.carrier_audio(audio(20), 0) == ()
    assert call.carrier_audio(audio(20), 20) == ()
    assert call.carrier_audio(audio(20), 40)[0].event == "carrier_rate_limited"
    assert call.upstream_opened(60) == (ConfigureSession(), AppendAudio(audio(20)), AppendAudio(audio(20)))


def test_without_a_frame_rate_limit_nothing_is_dropped():
    call = ready_call()
    assert all(call.carrier_audio(audio(20), 0) == (AppendAudio(audio(20)),) for _ in range(1000))
    assert call.stats.frames_rate_limited == 0


def test_carrier_violations_are_counted_by_kind_and_only_the_first_five_logged():
    call = ready_call()
    kinds = ["invalid_json", "unknown_event", "invalid_json", "missing_field", "invalid_json", "unknown_event",
             "invalid_json"]
    out = [call.carrier_violation(ProtocolViolation(kind, f"frame {i}"), i) for i, kind in enumerate(kinds)]
    for i in range(5):
        assert out[i] == (Note("carrier_frame_ignored", "warning", {"kind": kinds[i], "detail": f"frame {i}",
                                                                    "more_not_logged": i == 4}),)
    assert out[5:] == [(), ()]
    assert call.stats.carrier_errors == {"invalid_json": 4, "unknown_event": 2, "missing_field": 1}
    assert call.stats.carrier_errors_total == 7
    assert not call.ended


# --- losing the session: backoff, giving up --------------------------------------------------------


@pytest.mark.parametrize(("backoff", "delays"), [(0.5, [0.0, 0.5, 1.0, 2.0]), (0.25, [0.0, 0.25, 0.5, 1.0])])
def test_reconnects_back_off_then_give_up_with_the_fallback(backoff, delays):
    call = ready_call(max_reconnects=4, retry_backoff_s=backoff)
    got = []
    for n in range(4):
        *_, reconnect = call.upstream_closed(1006, "", n * 1000)
        assert reconnect == Reconnect("closed", "upstream closed the session (code 1006)", delays[n])
        assert call.stats.reconnects == n + 1
        got.append(reconnect.delay_s)
        call.upstream_reopened(n * 1000 + 100)
    assert got == delays
    assert call.upstream_closed(1006, "", 5000) == (
        Hangup("upstream_error", "upstream closed the session (code 1006); gave up after 4 reconnects", fallback=True),)
    assert call.ended and call.stats.reconnects == 4
    assert call.upstream_closed(1006, "", 5100) == ()


def test_recycles_are_immediate_and_do_not_count_towards_the_backoff():
    call = ready_call(max_reconnects=3, session_max_s=60)
    assert call.upstream_closed(1006, "", 1000)[-1].delay_s == 0.0
    call.upstream_reopened(1100)
    assert recycled(tick(call, 61_100), 0)
    call.upstream_reopened(61_200)
    assert call.stats.reconnects == 1 and call.stats.recycles == 1
    assert call.upstream_closed(1006, "", 62_000)[-1].delay_s == 0.5  # the second reconnect


def test_upstream_failed_hangs_up_with_the_fallback_once():
    call = ready_call()
    assert call.upstream_failed("connect refused", 10) == (Hangup("upstream_error", "connect refused", fallback=True),)
    assert call.ended and not call.upstream_ready
    assert call.upstream_failed("connect refused", 20) == ()
    assert call.upstream_closed(1006, "", 30) == ()


def test_upstream_failed_before_the_first_session_and_after_a_reconnect_request():
    call = Call(max_reconnects=2)
    assert call.upstream_failed("HTTP 401", 0) == (Hangup("upstream_error", "HTTP 401", fallback=True),)
    call = ready_call(max_reconnects=2)
    assert isinstance(call.upstream_closed(1006, "", 100)[-1], Reconnect)
    assert call.upstream_failed("reconnect failed: HTTP 503", 200) == (
        Hangup("upstream_error", "reconnect failed: HTTP 503", fallback=True),)


def test_upstream_failed_after_the_caller_hung_up_does_nothing():
    call = ready_call()
    call.carrier_stop(10)
    assert call.upstream_failed("connect refused", 20) == ()


# --- the stall watch -------------------------------------------------------------------------------


def test_carrier_backed_up_for_less_than_the_timeout_is_nothing():
    call = ready_call()  # stall_timeout_s=10
    assert tick(call, 0, carrier=True) == ()
    assert tick(call, 9_999, carrier=True) == ()
    assert tick(call, 10_500) == ()  # it drained: the count starts over
    assert tick(call, 11_000, carrier=True) == ()
    assert tick(call, 20_999, carrier=True) == ()
    assert not call.ended


def test_carrier_stalled_for_the_timeout_is_aborted_and_the_call_ends():
    call = ready_call()
    assert tick(call, 1000, carrier=True) == ()
    assert tick(call, 10_999, carrier=True) == ()
    assert tick(call, 11_000, carrier=True) == (
        Note("carrier_send_stalled", "warning", {"seconds": 10.0}),
        Abort(CARRIER),
        Hangup("carrier_error", "carrier stopped reading (send stalled for 10 s)"),
    )
    assert call.ended
    assert tick(call, 12_000, carrier=True, upstream=True) == ()
    assert tick(call, 60_000, carrier=True, upstream=True) == ()


def test_carrier_stall_timeout_is_configurable():
    call = ready_call(stall_timeout_s=2.5)
    assert tick(call, 0, carrier=True) == ()
    assert tick(call, 2_499, carrier=True) == ()
    actions = tick(call, 2_750, carrier=True)
    assert actions[0] == Note("carrier_send_stalled", "warning", {"seconds": 2.8})
    assert actions[1:] == (Abort(CARRIER), Hangup("carrier_error", "carrier stopped reading (send stalled for 3 s)"))


def test_upstream_stalled_is_lost_then_aborted_and_replaced():
    call = ready_call(max_reconnects=2)
    answer(call, "r1", "A1", "Hello there", 2000, 10_000)  # still playing when it stalls
    assert tick(call, 1000, upstream=True) == ()
    assert tick(call, 10_999, upstream=True) == ()
    detail = "upstream stopped reading (send stalled for 10 s)"
    assert tick(call, 11_000, upstream=True) == (
        ClearPlayback(),
        Note("upstream_lost", "warning", {"reason": "stalled", "detail": detail, "reconnect": 1}),
        Reconnect("stalled", detail, 0.0),
        Abort(UPSTREAM),
    )
    assert call.stats.reconnects == 1
    assert not call.upstream_ready and not call.ended
    assert tick(call, 30_000, upstream=True) == ()  # no session: nothing to watch
    call.upstream_reopened(31_000)
    assert tick(call, 31_000, upstream=True) == ()  # the new session's watch starts afresh
    assert tick(call, 40_999, upstream=True) == ()
    *_, reconnect, abort = tick(call, 41_000, upstream=True)
    assert (reconnect, abort) == (Reconnect("stalled", detail, 0.5), Abort(UPSTREAM))
    assert call.stats.reconnects == 2


def test_upstream_stalled_without_reconnects_hangs_up_with_the_fallback():
    call = ready_call()
    assert tick(call, 0, upstream=True) == ()
    assert tick(call, 10_000, upstream=True) == (
        Hangup("upstream_error", "upstream stopped reading (send stalled for 10 s); gave up after 0 reconnects",
               fallback=True),
        Abort(UPSTREAM),
    )
    assert call.ended
    assert tick(call, 20_000, carrier=True, upstream=True) == ()


def test_upstream_watch_is_ignored_while_there_is_no_session():
    call = Call(max_reconnects=1)
    assert tick(call, 0, upstream=True) == ()
    assert tick(call, 60_000, upstream=True) == ()
    call.upstream_opened(60_000)
    assert tick(call, 60_000, upstream=True) == ()
    assert tick(call, 69_999, upstream=True) == ()
    assert tick(call, 70_000, upstream=True)[-1] == Abort(UPSTREAM)


def test_the_carrier_is_watched_while_there_is_no_session():
    call = Call(max_reconnects=1)
    assert tick(call, 0, carrier=True) == ()
    assert tick(call, 10_000, carrier=True)[1:] == (
        Abort(CARRIER), Hangup("carrier_error", "carrier stopped reading (send stalled for 10 s)"))


# --- renewing the session between turns ------------------------------------------------------------


def test_recycle_at_the_session_cap_between_turns():
    call = ready_call(session_max_s=60)
    assert call.tick_interval_s() == 1.0
    for t in (1_000, 30_000, 59_999):
        assert tick(call, t) == ()
    assert call.tick_interval_s() == 1.0
    assert recycled(tick(call, 60_000), 0)
    assert call.stats.recycles == 1 and call.stats.reconnects == 0
    assert not call.upstream_ready and not call.ended
    assert call.tick_interval_s() == 1.0
    assert tick(call, 61_000) == ()  # being replaced


def test_no_recycle_without_a_session_cap():
    call = ready_call()
    assert tick(call, 10 * 3600_000) == ()
    assert call.tick_interval_s() == 1.0


def test_recycle_waits_for_the_active_response():
    call = ready_call(session_max_s=60)
    call.upstream_event(ResponseCreated("r1"), 59_000)
    assert tick(call, 60_000) == ()
    assert call.tick_interval_s() == 0.2  # due: look for a quiet moment often
    assert tick(call, 60_200) == ()
    call.upstream_event(ResponseDone("r1", "completed"), 60_300)
    assert recycled(tick(call, 60_400), 0)
    assert call.tick_interval_s() == 1.0


def test_recycle_waits_for_the_audio_to_play():
    call = ready_call(session_max_s=60)
    marks = answer(call, "r1", "A1", "Two seconds of answer.", 2000, 59_000)  # plays until 61 000
    assert tick(call, 60_000) == ()
    assert tick(call, 60_999) == ()
    assert call.tick_interval_s() == 0.2
    call.carrier_mark(marks[0], 61_000)
    assert recycled(tick(call, 61_000), 1)


def test_recycle_waits_for_the_audio_to_play_by_the_clock_without_marks():
    call = ready_call(session_max_s=60, marks=False)
    answer(call, "r1", "A1", "Two seconds of answer.", 2000, 59_000)
    assert tick(call, 60_000) == ()
    assert tick(call, 60_999.9) == ()
    assert recycled(tick(call, 61_000), 1)


def test_recycle_waits_while_the_caller_speaks_and_for_the_grace_after():
    call = ready_call(session_max_s=60)
    call.upstream_event(SpeechStarted("U1"), 59_500)
    assert tick(call, 60_000) == ()
    assert tick(call, 65_000) == ()
    assert call.tick_interval_s() == 0.2
    call.upstream_event(SpeechStopped(5000), 65_000)
    assert tick(call, 67_999) == ()  # a response may be on its way
    assert recycled(tick(call, 68_000), 1)


def test_recycle_waits_3000_ms_after_speech_stopped():
    call = ready_call(session_max_s=60)
    call.upstream_event(SpeechStopped(0), 58_000)
    assert tick(call, 60_000) == ()
    assert tick(call, 60_999) == ()
    assert recycled(tick(call, 61_000), 0)


def test_a_created_response_ends_the_grace_and_its_end_allows_the_recycle():
    call = ready_call(session_max_s=60)
    call.upstream_event(SpeechStopped(0), 59_000)
    call.upstream_event(ResponseCreated("r1"), 59_500)
    assert tick(call, 60_000) == ()
    call.upstream_event(ResponseDone("r1", "completed"), 60_500)
    assert recycled(tick(call, 60_600), 0)  # before 62 000: no response is due any more


def test_tick_interval_follows_the_stall_timeout():
    assert ready_call(stall_timeout_s=1).tick_interval_s() == 0.5
    assert ready_call(stall_timeout_s=2).tick_interval_s() == 1.0
    assert ready_call(stall_timeout_s=30).tick_interval_s() == 1.0
    call = ready_call(session_max_s=60, stall_timeout_s=1, max_reconnects=1)
    call.upstream_event(SpeechStarted("U1"), 59_000)
    tick(call, 60_000)
    assert call.tick_interval_s() == 0.2
    call.upstream_closed(1006, "", 60_100)  # no session: nothing is due until the next one has aged
    tick(call, 60_200)
    assert call.tick_interval_s() == 0.5


def test_reopened_after_a_recycle_restores_the_conversation_and_the_age_starts_over():
    call = ready_call(session_max_s=60)
    call.upstream_event(SpeechStarted("U1"), 10_000)
    call.upstream_event(SpeechStopped(0), 10_500)
    call.upstream_event(TranscriptDone("user", "U1", "What time do you open?"), 10_600)
    marks = answer(call, "r1", "A1", "We open at nine.", 1000, 11_000)
    call.carrier_mark(marks[0], 12_000)
    assert recycled(tick(call, 60_000), 2)
    assert call.carrier_audio(audio(20), 60_050) == ()  # waits for the new session
    assert call.upstream_reopened(60_300) == (
        ConfigureSession(),
        RestoreConversation((("user", "What time do you open?"), ("assistant", "We open at nine."))),
        AppendAudio(audio(20)),
    )
    assert call.upstream_ready
    assert tick(call, 60_300) == ()
    assert tick(call, 120_299) == ()
    assert recycled(tick(call, 120_300), 2)
    assert call.stats.recycles == 2 and call.stats.reconnects == 0


# --- the first session's input timeline ----------------------------------------------------------


def test_speech_stopped_is_placed_on_the_first_sessions_input_timeline_after_buffer_drops():
    call = Call(max_buffered_ms=100)
    for i in range(10):
        call.carrier_audio(audio(20), i * 20)  # 200 ms before the session opens: the oldest 100 ms dropped
    assert call.stats.frames_dropped == 5
    call.upstream_opened(200)  # the session is sent 100 ms
    for i in range(40):
        call.carrier_audio(audio(20), 200 + i * 20)  # then 800 ms: the session has 900 ms of input
    # It says speech ended at 800 ms of its input: 100 ms before the newest audio, at 900 on our clock.
    call.upstream_event(SpeechStopped(800), 1000)
    call.upstream_event(ResponseCreated("r1"), 1100)
    call.upstream_event(AudioDelta("r1", "A", 0, audio(100)), 1300)
    assert call.stats.turn_latencies_ms == [400]  # not 500: the dropped 100 ms never reached the session


# --- a warm session (claimed from the pool, maybe configured at the webhook) -------------------------


def test_a_session_configured_at_the_webhook_is_not_configured_again():
    call = Call(greeting="Hello")
    call.carrier_audio(audio(20), 0)
    assert call.upstream_opened(40, configured=True) == (Greet("Hello"), AppendAudio(audio(20)))
    assert call.upstream_ready
    # Its session.updated (replayed from the warm session's frames) puts the agent on the line.
    call.stream_started_at = 0
    call.upstream_event(SessionUpdated("sess_1"), 40)
    assert call.session_ready and call.stats.upstream_ready_ms == 40


def test_a_warm_session_claimed_unconfigured_is_configured_as_a_dialled_one():
    call = Call(greeting="Hello")
    assert call.upstream_opened(0, age_ms=120_000) == (ConfigureSession(), Greet("Hello"))


def test_a_warm_sessions_renewal_counts_from_when_the_session_opened():
    call = Call(session_max_s=60)
    call.upstream_opened(1_000, age_ms=20_000)  # it waited 20 s in the pool
    assert tick(call, 40_999) == ()
    assert recycled(tick(call, 41_000), 0)  # 60 s of the session's life, not of the call's
    assert call.upstream_reopened(41_100, age_ms=5_000)[0] == ConfigureSession()  # a warm replacement
    assert tick(call, 96_099) == ()
    assert recycled(tick(call, 96_100), 0)
