"""Call: losing the upstream session, replacing it, renewing it between turns; exact, on a fake clock."""

import base64

import pytest

from gateway.core.call import Call
from gateway.core.conversation import ConversationLog, heard_prefix
from gateway.core.events import (
    FATAL,
    RECOVERABLE,
    AppendAudio,
    AudioDelta,
    AudioDone,
    ClearPlayback,
    ConfigureSession,
    Hangup,
    ItemAdded,
    Note,
    Reconnect,
    ResponseCreated,
    ResponseDone,
    RestoreConversation,
    SendMark,
    SpeechStarted,
    SpeechStopped,
    TranscriptDelta,
    TranscriptDone,
    UpstreamError,
)


def audio(ms: int) -> str:
    return base64.b64encode(b"\xff" * (8 * ms)).decode()


def without_notes(actions: tuple) -> tuple:
    return tuple(a for a in actions if not isinstance(a, Note))


def ready_call(**kw) -> Call:
    call = Call(max_reconnects=kw.pop("max_reconnects", 2), **kw)
    call.upstream_opened(0)
    return call


def user_turn(call: Call, item: str, text: str, start: float) -> None:
    call.upstream_event(SpeechStarted(item), start)
    call.upstream_event(SpeechStopped(0), start + 500)
    call.upstream_event(TranscriptDone("user", item, text), start + 600)


def answer(call: Call, rid: str, item: str, text: str, ms: int, now: float, *, done: bool = True) -> list[str]:
    call.upstream_event(ResponseCreated(rid), now)
    call.upstream_event(ItemAdded(item, "assistant"), now)
    call.upstream_event(TranscriptDelta(item, text), now)
    actions = call.upstream_event(AudioDelta(rid, item, 0, audio(ms)), now)
    if done:
        call.upstream_event(AudioDone(item), now)
        call.upstream_event(TranscriptDone("assistant", item, text), now)
        call.upstream_event(ResponseDone(rid, "completed"), now)
    return [a.name for a in actions if isinstance(a, SendMark)]


def test_without_reconnects_a_drop_still_hangs_up():
    call = Call()
    call.upstream_opened(0)
    (hangup,) = call.upstream_closed(1006, "", 10)
    assert hangup.outcome == "upstream_error" and hangup.fallback


def test_a_drop_mid_answer_clears_playback_and_asks_for_a_new_session():
    call = ready_call()
    user_turn(call, "U1", "What time do you open?", 0)
    answer(call, "r1", "A1", "We open at nine in the morning every day.", 1000, 1000, done=False)
    actions = call.upstream_closed(1006, "no close frame", 1400)  # 400 ms of the answer played
    assert without_notes(actions) == (ClearPlayback(), Reconnect("closed", "upstream closed the session "
                                                                            "(code 1006, no close frame)"))
    assert call.stats.reconnects == 1 and not call.upstream_ready
    assert call.active_response_id is None
    assert not call.playback.is_playing(1500)  # the lost session's items are forgotten
    # Caller audio waits for the new session, then the conversation is restored before it.
    assert call.carrier_audio(audio(20), 1500) == ()
    reopened = call.upstream_reopened(1600)
    assert reopened[0] == ConfigureSession()
    assert reopened[1] == RestoreConversation((("user", "What time do you open?"),
                                               ("assistant", "We open at nine…")))  # 40% of it
    assert reopened[2:] == (AppendAudio(audio(20)),)
    assert call.upstream_ready


def test_late_deltas_of_the_lost_session_are_dropped():
    call = ready_call()
    answer(call, "r1", "A1", "hello", 1000, 0, done=False)
    call.upstream_closed(1006, "", 100)
    call.upstream_reopened(200)
    late = call.upstream_event(AudioDelta("r1", "A1", 0, audio(20)), 210)
    assert late == () and call.stats.stale_deltas_dropped == 1


# The face classifies the error and names it with a bounded label, which becomes the reconnect reason.
@pytest.mark.parametrize(("error", "reason"), [
    (UpstreamError(RECOVERABLE, "server_error", None, "server_error", "The server had an error"), "server_error"),
    (UpstreamError(RECOVERABLE, "server_error", "server_error", "invalid_request_error", "x"), "server_error"),
    (UpstreamError(RECOVERABLE, "session_expired", "session_expired", "invalid_request_error", "60 minutes"),
     "session_expired"),
    (UpstreamError(RECOVERABLE, "server_error", "some_new_code", "server_error", "x"), "server_error"),
])
def test_recoverable_errors_reconnect(error, reason):
    call = ready_call()
    actions = call.upstream_event(error, 10)
    assert [type(a) for a in actions] == [Note, Note, Reconnect]
    assert actions[-1].reason == reason
    assert actions[-1].detail == f"upstream error: {error.code or error.error_type}"


def test_fatal_errors_still_hang_up_with_reconnects_enabled():
    call = ready_call()
    actions = call.upstream_event(UpstreamError(FATAL, "invalid_api_key", "invalid_api_key", "authentication_error",
                                                "bad key"), 10)
    assert actions[-1] == Hangup("upstream_error", "fatal upstream error: invalid_api_key", fallback=True)
    assert call.upstream_closed(1000, "", 20) == ()  # the close that follows changes nothing


def test_reconnects_are_bounded():
    call = ready_call(max_reconnects=2)
    for i in range(2):
        assert isinstance(call.upstream_closed(1006, "", i * 100)[-1], Reconnect)
        call.upstream_reopened(i * 100 + 50)
    (hangup,) = call.upstream_closed(1006, "", 300)
    assert hangup.outcome == "upstream_error" and "gave up after 2 reconnects" in hangup.reason and hangup.fallback
    assert call.upstream_closed(1006, "", 400) == ()


def test_speech_stopped_is_placed_on_the_new_sessions_input_timeline():
    call = ready_call()
    for i in range(50):
        call.carrier_audio(audio(20), i * 20)  # 1 s to the first session
    call.upstream_closed(1006, "", 1000)
    for i in range(10):
        call.carrier_audio(audio(20), 1000 + i * 20)  # 200 ms wait for the new session
    call.upstream_reopened(1200)
    for i in range(40):
        call.carrier_audio(audio(20), 1200 + i * 20)
    # The new session has 1000 ms of input; it says speech ended at 900: 100 ms before the newest audio.
    call.upstream_event(SpeechStopped(900), 2000)
    call.upstream_event(ResponseCreated("r1"), 2100)
    call.upstream_event(AudioDelta("r1", "A", 0, audio(100)), 2300)
    assert call.stats.turn_latencies_ms == [400]


def test_renewal_waits_for_a_quiet_moment():
    call = ready_call()
    assert call.between_turns(0)
    call.upstream_event(SpeechStarted("U1"), 100)
    assert not call.between_turns(200) and call.recycle(200) == ()  # the caller is speaking
    call.upstream_event(SpeechStopped(0), 600)
    assert not call.between_turns(700)  # the answer is on its way
    marks = answer(call, "r1", "A1", "Sure.", 500, 800)
    assert not call.between_turns(900)  # it is playing
    call.carrier_mark(marks[0], 1300)
    assert call.between_turns(1300)
    actions = call.recycle(1300)
    assert actions[-1] == Reconnect("recycle", "session renewed before its duration cap")
    assert call.stats.recycles == 1 and call.stats.reconnects == 0
    assert not call.upstream_ready


def test_no_response_at_all_does_not_block_renewal_forever():
    call = ready_call()
    call.upstream_event(SpeechStarted("U1"), 0)
    call.upstream_event(SpeechStopped(0), 500)
    assert not call.between_turns(3000)
    assert call.between_turns(3600)


def test_a_barge_in_is_replayed_as_what_was_heard():
    call = ready_call()
    user_turn(call, "U1", "Tell me about the menu", 0)
    answer(call, "r1", "A1", "Today we have soup salad and a very long list of desserts", 2000, 1000, done=False)
    call.upstream_event(SpeechStarted("U2"), 1500)  # 500 of 2000 ms heard
    call.upstream_event(TranscriptDone("assistant", "A1",
                                       "Today we have soup salad and a very long list of desserts"), 1510)
    call.upstream_event(SpeechStopped(0), 2000)
    call.upstream_event(TranscriptDone("user", "U2", "Just soup"), 2100)
    assert call.conversation.replay() == (("user", "Tell me about the menu"), ("assistant", "Today we have…"),
                                          ("user", "Just soup"))


def test_conversation_log_keeps_order_bounds_size_and_skips_untranscribed_turns():
    log = ConversationLog()
    log.user_turn("U1")  # no transcription: nothing to replay for it
    log.assistant_turn("A1")
    log.assistant_delta("A1", "Hel")
    log.assistant_delta("A1", "lo")
    log.user_turn("U2")
    log.transcript("user", "U2", "hi")
    log.transcript("assistant", "A1", "Hello there")  # the final transcript wins over the deltas
    assert log.replay() == (("assistant", "Hello there"), ("user", "hi"))
    log.cut("A1", 0, 1000)  # heard nothing of it
    assert log.replay() == (("user", "hi"),)
    big = ConversationLog()
    for i in range(500):
        big.transcript("user", f"U{i}", "x" * 200)
    assert len(big) == 200
    assert sum(len(t) for _, t in big.replay()) <= 24_000


def test_heard_prefix_ends_on_a_word():
    assert heard_prefix("one two three four", 0.5) == "one two…"
    assert heard_prefix("one two three four", 1.0) == "one two three four"
    assert heard_prefix("one two", 0.1) == ""
