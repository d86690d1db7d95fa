"""Call: barge-in and truncation decisions, exact numbers on a fake clock."""

import base64

import pytest

from gateway.core.call import Call
from gateway.core.codec import b64_audio_ms, l16
from gateway.core.events import (
    BENIGN,
    FATAL,
    RECOVERABLE,
    TRUNCATE_TOO_LONG,
    WARNING,
    AppendAudio,
    AudioDelta,
    AudioDone,
    CancelResponse,
    ClearPlayback,
    ConfigureSession,
    Greet,
    Hangup,
    Note,
    PlayAudio,
    ResponseCreated,
    ResponseDone,
    SendMark,
    SpeechStarted,
    SpeechStopped,
    TruncateItem,
    UpstreamError,
    UpstreamUnreadable,
)


def audio(ms: int) -> str:
    return base64.b64encode(b"\xff" * (8 * ms)).decode()


def created(call: Call, rid: str, now: float) -> None:
    call.upstream_event(ResponseCreated(rid), now)


def delta(call: Call, rid: str, item: str, ms: int, now: float) -> tuple:
    return call.upstream_event(AudioDelta(rid, item, 0, audio(ms)), now)


def marks_of(actions: tuple) -> list[str]:
    return [a.name for a in actions if isinstance(a, SendMark)]


def speech(call: Call, now: float) -> tuple:
    return tuple(a for a in call.upstream_event(SpeechStarted(None), now)
                 if not isinstance(a, Note))


def ready_call(**kw) -> Call:
    call = Call(**kw)
    call.upstream_opened(0)
    return call


def test_b64_audio_ms_without_decoding():
    for size in (1, 2, 3, 160, 161, 162, 800):
        payload = base64.b64encode(b"\x7f" * size).decode()
        assert b64_audio_ms(payload) == size / 8
    assert b64_audio_ms("") == 0


def test_delta_passes_through_and_is_followed_by_a_mark():
    call = ready_call()
    created(call, "r1", 0)
    payload = audio(20)
    actions = call.upstream_event(AudioDelta("r1", "A", 0, payload), 5)
    assert actions[0] == PlayAudio(payload)
    assert isinstance(actions[1], SendMark)


def test_truncate_after_partial_playback():
    call = ready_call()
    created(call, "r1", 0)
    marks = []
    for _ in range(5):
        marks += marks_of(delta(call, "r1", "A", 200, now=0))  # 1 s sent at once
    call.carrier_mark(marks[0], 200)
    call.carrier_mark(marks[1], 400)
    actions = speech(call, 740)
    # The caller heard 740 ms of A; the server interrupts itself, so no cancel.
    assert actions == (ClearPlayback(), TruncateItem("A", 0, 740))
    assert call.stats.barge_ins == 1


def test_truncate_uses_the_latest_mark_when_the_carrier_runs_late():
    call = ready_call()
    created(call, "r1", 0)
    marks = marks_of(delta(call, "r1", "A", 500, 0)) + marks_of(delta(call, "r1", "A", 500, 0))
    call.carrier_mark(marks[0], 560)  # first half done 60 ms late
    assert speech(call, 700) == (ClearPlayback(), TruncateItem("A", 0, 640))


def test_cancel_is_sent_only_when_the_session_does_not_interrupt_itself():
    call = ready_call(interrupts_itself=False)
    created(call, "r1", 0)
    delta(call, "r1", "A", 1000, 0)
    assert speech(call, 300) == (ClearPlayback(), CancelResponse("r1"), TruncateItem("A", 0, 300))


def test_marks_echoed_by_clear_do_not_count_and_the_second_barge_in_is_exact():
    call = ready_call()
    created(call, "r1", 0)
    m = marks_of(delta(call, "r1", "A", 500, 0)) + marks_of(delta(call, "r1", "A", 500, 0))
    assert speech(call, 250) == (ClearPlayback(), TruncateItem("A", 0, 250))
    # Twilio echoes the pending marks on clear: flushed, not played.
    call.carrier_mark(m[0], 252)
    call.carrier_mark(m[1], 252)
    assert call.stats.marks_flushed == 2
    call.upstream_event(ResponseDone("r1", "cancelled"), 260)
    # Second turn.
    created(call, "r2", 2000)
    m2 = marks_of(delta(call, "r2", "B", 300, 2000)) + marks_of(delta(call, "r2", "B", 300, 2000))
    call.carrier_mark(m2[0], 2300)
    assert speech(call, 2410) == (ClearPlayback(), TruncateItem("B", 0, 410))
    assert call.stats.barge_ins == 2


def test_two_items_in_one_response():
    call = ready_call()
    created(call, "r1", 0)
    delta(call, "r1", "A", 200, 0)
    call.upstream_event(AudioDone("A"), 0)
    delta(call, "r1", "B", 300, 0)
    # A was heard whole (no truncate needed); B was cut 150 ms in.
    assert speech(call, 350) == (ClearPlayback(), TruncateItem("B", 0, 150))


def test_two_items_cut_inside_the_first_truncates_both():
    call = ready_call()
    created(call, "r1", 0)
    delta(call, "r1", "A", 200, 0)
    call.upstream_event(AudioDone("A"), 0)
    delta(call, "r1", "B", 300, 0)
    assert speech(call, 120) == (ClearPlayback(), TruncateItem("A", 0, 120), TruncateItem("B", 0, 0))


def test_barge_in_after_playback_finished_does_nothing():
    call = ready_call()
    created(call, "r1", 0)
    m = marks_of(delta(call, "r1", "A", 200, 0))
    call.upstream_event(AudioDone("A"), 0)
    call.upstream_event(ResponseDone("r1", "completed"), 10)
    call.carrier_mark(m[0], 200)
    assert speech(call, 900) == ()
    assert call.stats.barge_ins == 0


def test_barge_in_before_the_first_delta():
    call = ready_call(interrupts_itself=False)
    created(call, "r1", 0)
    assert speech(call, 40) == (CancelResponse("r1"),)
    # The deltas already on their way belong to the interrupted response: dropped.
    assert delta(call, "r1", "A", 100, 60) == ()
    assert call.stats.stale_deltas_dropped == 1
    assert call.stats.barge_ins == 1


def test_stale_deltas_of_the_interrupted_response_are_dropped():
    call = ready_call()
    created(call, "r1", 0)
    delta(call, "r1", "A", 400, 0)
    speech(call, 100)
    assert delta(call, "r1", "A", 100, 110) == ()
    assert call.stats.stale_deltas_dropped == 1
    created(call, "r2", 500)
    assert len(delta(call, "r2", "C", 100, 510)) == 2


def test_truncate_never_exceeds_the_audio_received():
    call = ready_call()
    created(call, "r1", 0)
    delta(call, "r1", "A", 100, 0)  # still streaming: audio.done not received
    assert speech(call, 500) == (ClearPlayback(), TruncateItem("A", 0, 100))


def test_truncate_is_floored_to_whole_milliseconds():
    call = ready_call()
    created(call, "r1", 0)
    delta(call, "r1", "A", 300, 0.0)
    assert speech(call, 123.9) == (ClearPlayback(), TruncateItem("A", 0, 123))


def test_audio_waits_for_the_upstream_then_flushes_in_order():
    call = Call(greeting="Hello")
    assert call.carrier_audio(audio(20), 0) == ()
    assert call.carrier_audio(audio(20), 20) == ()
    actions = call.upstream_opened(30)
    assert actions == (ConfigureSession(), Greet("Hello"), AppendAudio(audio(20)), AppendAudio(audio(20)))
    assert call.carrier_audio(audio(20), 40) == (AppendAudio(audio(20)),)


def test_pre_connect_buffer_is_bounded():
    call = Call(max_buffered_ms=100)
    for i in range(10):
        call.carrier_audio(audio(20), i * 20)
    assert len(call.upstream_opened(200)) == 1 + 5
    assert call.stats.frames_dropped == 5


# The face classifies the codes; session_expired is recoverable, but without reconnects it ends the call too.
@pytest.mark.parametrize(("severity", "code"), [(RECOVERABLE, "session_expired"), (FATAL, "beta_api_shape_disabled"),
                                                (FATAL, "invalid_api_key"), (FATAL, "insufficient_quota")])
def test_fatal_upstream_errors_hang_up(severity, code):
    call = ready_call()
    actions = call.upstream_event(UpstreamError(severity, code, code, "invalid_request_error", "x"), 0)
    assert any(isinstance(a, Hangup) and a.outcome == "upstream_error" and a.fallback for a in actions)


def test_benign_errors_and_rejected_truncates_keep_the_call():
    call = ready_call()
    for err in (UpstreamError(BENIGN, "response_cancel_not_active", "response_cancel_not_active",
                              "invalid_request_error", "no active response"),
                UpstreamError(TRUNCATE_TOO_LONG, "invalid_request_error", None, "invalid_request_error",
                              "Audio content of 300ms is already shorter than 420ms")):
        actions = call.upstream_event(err, 0)
        assert not any(isinstance(a, Hangup) for a in actions)
    assert call.stats.truncates_rejected == 1


def test_turn_and_heard_latency():
    call = ready_call()
    for i in range(50):  # one second of caller audio
        call.carrier_audio(audio(20), i * 20)
    # The upstream says speech ended at 900 ms of input; we have 1000 ms: it ended 100 ms ago.
    call.upstream_event(SpeechStopped(900), 1000)
    created(call, "r1", 1200)
    m = marks_of(delta(call, "r1", "A", 100, 1300))
    call.carrier_mark(m[0], 1420)
    assert call.stats.turn_latencies_ms == [400]  # 900 -> 1300 on our clock
    assert call.stats.heard_latencies_ms == [420]  # started playing at 1320


def test_stop_hangs_up_completed():
    call = ready_call()
    assert call.carrier_stop(10) == (Hangup("completed", "caller hung up"),)


def test_upstream_close_hangs_up_once():
    call = ready_call()
    (h,) = call.upstream_closed(1011, "boom", 5)
    assert h.outcome == "upstream_error" and "1011" in h.reason and h.fallback
    assert call.upstream_closed(1011, "boom", 6) == ()


def test_marks_are_sparse_for_small_deltas_and_the_end_is_always_marked():
    call = ready_call()
    created(call, "r1", 0)
    counts = [len(marks_of(delta(call, "r1", "A", 20, 0))) for _ in range(12)]  # 240 ms in 20 ms deltas
    # The item's first chunk, then one per 100 ms of audio.
    assert counts == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]
    (end_mark,) = call.upstream_event(AudioDone("A"), 0)
    assert isinstance(end_mark, SendMark) and end_mark.last
    assert call.upstream_event(AudioDone("A"), 0) == ()  # nothing left unmarked


def test_a_carrier_of_whole_frames_gets_a_last_mark_even_when_nothing_is_unmarked():
    """A face that holds back a partial frame sends it at the answer's `last` mark: every answer ends
    with one, even right after an interval mark."""
    call = ready_call(whole_frames=True)
    created(call, "r1", 0)
    assert [len(marks_of(delta(call, "r1", "A", 100, 0))) for _ in range(2)] == [1, 1]  # both marked
    (end_mark,) = call.upstream_event(AudioDone("A"), 0)
    assert isinstance(end_mark, SendMark) and end_mark.last
    # The extra mark sits where the previous one did: its echo confirms nothing new, and nothing breaks.
    assert call.carrier_mark(end_mark.name, 500) == ()


def test_truncation_stays_exact_between_sparse_marks():
    call = ready_call()
    created(call, "r1", 0)
    marks = []
    for _ in range(50):  # one second in 20 ms deltas, sent at once
        marks += marks_of(delta(call, "r1", "A", 20, 0))
    call.carrier_mark(marks[1], 130)  # the 120 ms mark came back 10 ms late
    assert speech(call, 567) == (ClearPlayback(), TruncateItem("A", 0, 557))


def test_unreadable_upstream_events_are_noted_and_counted():
    call = ready_call()
    assert call.upstream_event(UpstreamUnreadable("invalid_json", None, 17), 0) == (
        Note("upstream_event_unreadable", "warning", {"reason": "invalid_json", "type": None, "size": 17}),)
    assert call.upstream_event(UpstreamUnreadable("malformed_event", "response.output_audio.delta", 80), 1) == (
        Note("upstream_event_unreadable", "warning", {"reason": "malformed_event",
                                                      "type": "response.output_audio.delta", "size": 80}),)
    assert call.stats.upstream_errors == ["invalid_json", "malformed_event"]
    assert not call.ended


def test_error_severities_set_the_log_level_and_labels_are_counted():
    call = ready_call()
    (benign,) = call.upstream_event(UpstreamError(BENIGN, "response_cancel_not_active"), 0)
    (warning,) = call.upstream_event(UpstreamError(WARNING, "unknown_parameter", "unknown_parameter",
                                                   "invalid_request_error", "bad", "session.foo"), 0)
    assert (benign.event, benign.level) == ("upstream_error", "info")
    assert warning == Note("upstream_error", "warning", {"code": "unknown_parameter",
                                                         "error_type": "invalid_request_error", "message": "bad",
                                                         "param": "session.foo"})
    assert call.stats.upstream_errors == ["response_cancel_not_active", "unknown_parameter"]


def test_response_done_counts_statuses_and_tokens_by_kind():
    call = ready_call()
    created(call, "r1", 0)
    usage = {"input_text": 10, "input_audio": 200, "input_cached": 64, "output_text": 5, "output_audio": 300}
    assert call.upstream_event(ResponseDone("r1", "completed", usage), 100) == ()
    assert call.active_response_id is None
    created(call, "r2", 200)
    details = {"type": "failed", "error": {"code": "server_error"}}
    assert call.upstream_event(ResponseDone("r2", "failed", {"output_audio": 40, "input_text": 0}, details), 300) == (
        Note("response_failed", "warning", {"details": details}),)
    call.upstream_event(ResponseDone("r3", "cancelled", None), 400)
    assert call.stats.responses == {"completed": 1, "failed": 1, "cancelled": 1}
    assert call.stats.tokens == {"input_text": 10, "input_audio": 200, "input_cached": 64, "input_cached_audio": 0,
                                 "output_text": 5,
                                 "output_audio": 340}


def test_without_marks_barge_in_truncates_at_the_clock_estimate():
    call = ready_call(marks=False)
    created(call, "r1", 0)
    payload = audio(20)
    for _ in range(50):  # 1 s sent at once
        assert call.upstream_event(AudioDelta("r1", "A", 0, payload), 0) == (PlayAudio(payload),)
    assert call.upstream_event(AudioDone("A"), 0) == ()  # no mark to end the answer with
    assert speech(call, 640) == (ClearPlayback(), TruncateItem("A", 0, 640))
    assert call.stats.barge_ins == 1 and call.stats.truncations == [("A", 640, 1000.0)]


def test_without_marks_an_underrun_delays_the_truncate():
    call = ready_call(marks=False)
    created(call, "r1", 0)
    delta(call, "r1", "A", 500, 0)
    delta(call, "r1", "A", 500, 700)  # the queue ran dry from 500 to 700
    assert speech(call, 1000) == (ClearPlayback(), TruncateItem("A", 0, 800))


def test_audio_is_measured_in_the_streams_codec():
    call = ready_call(codec=l16(16000))  # 32 bytes per ms
    frame = base64.b64encode(b"\x00" * 640).decode()
    call.carrier_audio(frame, 0)
    assert call.stats.audio_in_ms == 20
    created(call, "r1", 0)
    call.upstream_event(AudioDelta("r1", "A", 0, base64.b64encode(b"\x00" * 16000).decode()), 0)  # 500 ms
    assert call.stats.audio_out_ms == 500
    assert speech(call, 250) == (ClearPlayback(), TruncateItem("A", 0, 250))
    call = Call()
    call.set_codec(l16(16000))
    call.carrier_audio(frame, 0)
    assert call.stats.audio_in_ms == 20
