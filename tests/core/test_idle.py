"""Silence in the core, on a fake clock: the check-in comes IDLE_REPROMPT_S after the agent's answer finished
playing (the echo of its last mark; the clock estimate without marks), not after it was sent; caller speech
and keys start the count again; a tool, a response, audio or the check-in itself suspends it; the idle
goodbye hangs up once it has been heard, or at its bound, and caller speech calls it off."""

import base64

import pytest

from gateway.core.call import Call
from gateway.core.events import (
    AudioDelta,
    AudioDone,
    Hangup,
    Note,
    RequestResponse,
    ResponseCreated,
    ResponseDone,
    SendMark,
    SendToolOutput,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    ToolResult,
)
from gateway.core.idle import GOODBYE, REPROMPT, IdlePolicy
from gateway.core.keypad import DIGIT, Keypad

CHECK_IN = RequestResponse("Still there?", REPROMPT)
GOODBYE_ASKED = RequestResponse("Say goodbye.", GOODBYE)


def audio(ms: int) -> str:
    return base64.b64encode(b"\xff" * (8 * ms)).decode()


def acts(actions) -> list:
    return [a for a in actions if not isinstance(a, Note)]


def tick(call: Call, now: float) -> list:
    return acts(call.tick(now, carrier_backed_up=False, upstream_backed_up=False))


def ready(reprompt_s: float = 0.0, hangup_s: float = 0.0, **kw) -> Call:
    policy = IdlePolicy(reprompt_s, hangup_s, "Still there?", "Say goodbye.", goodbye_max_wait_s=5.0)
    call = Call(idle=policy, **kw)
    call.upstream_opened(0)
    return call


def answer(call: Call, rid: str, ms: int, now: float) -> list[str]:
    """A response of `ms` of audio, sent at once at `now`: the names of the marks sent."""
    call.upstream_event(ResponseCreated(rid), now)
    marks = [a.name for a in call.upstream_event(AudioDelta(rid, f"item_{rid}", 0, audio(ms)), now)
             if isinstance(a, SendMark)]
    marks += [a.name for a in call.upstream_event(AudioDone(f"item_{rid}"), now) if isinstance(a, SendMark)]
    call.upstream_event(ResponseDone(rid, "completed"), now + 10)
    return marks


def played(call: Call, marks: list[str], now: float) -> list:
    """The carrier echoes the answer's marks: it finished playing at `now`."""
    out = []
    for name in marks:
        out += call.carrier_mark(name, now)
    return out


def test_off_by_default():
    call = ready()
    played(call, answer(call, "r1", 1000, 100), 1300)
    assert tick(call, 100_000) == [] and call.idle_tick_s(5000) is None


def test_the_check_in_counts_from_the_end_of_playback_not_from_sending():
    call = ready(reprompt_s=5)
    marks = answer(call, "r1", 1000, 100)  # sent (and done) at 100-110; the carrier plays it 300 .. 1300
    assert tick(call, 5200) == []  # 5 s after it was sent: still playing by the marks, and not the moment
    played(call, marks, 1300)
    assert call.silent_since(1300) == 1300
    assert call.idle_tick_s(1300) == pytest.approx(5.0)
    assert tick(call, 6299) == []
    actions = call.tick(6300, carrier_backed_up=False, upstream_backed_up=False)
    assert acts(actions) == [CHECK_IN]
    assert next(a for a in actions if isinstance(a, Note)).fields == {"silent_s": 5.0}
    assert call.stats.idle_reprompts == 1
    assert tick(call, 20_000) == []  # once per silence


def test_without_marks_the_clock_says_when_the_answer_ended():
    call = ready(reprompt_s=5, marks=False)
    answer(call, "r1", 2000, 100)  # played by estimate 100 .. 2100
    assert call.silent_since(2000) is None  # still playing
    assert call.silent_since(2100) == 2100
    assert tick(call, 7099) == [] and tick(call, 7100) == [CHECK_IN]


def test_the_check_in_counts_from_the_session_when_nothing_was_said():
    call = ready(reprompt_s=5)
    assert tick(call, 4999) == [] and tick(call, 5000) == [CHECK_IN]


def test_caller_speech_starts_the_count_again():
    call = ready(reprompt_s=5)
    played(call, answer(call, "r1", 1000, 100), 1300)
    call.upstream_event(SpeechStarted("item_U1"), 3000)
    assert tick(call, 6300) == []  # speaking: not silent
    call.upstream_event(SpeechStopped(3400), 3400)
    played(call, answer(call, "r2", 500, 3600), 4200)  # the answer to it played until 4200
    assert tick(call, 9199) == [] and tick(call, 9200) == [CHECK_IN]


def test_a_key_starts_the_count_again():
    call = ready(reprompt_s=5, keypad=Keypad())  # keys off: counted, logged, and a sign of life
    played(call, answer(call, "r1", 1000, 100), 1300)
    call.carrier_dtmf("5", 4000)
    assert tick(call, 6300) == [] and tick(call, 9000) == [CHECK_IN]


def test_keys_being_keyed_in_and_their_answer_suspend_it():
    call = ready(reprompt_s=5, keypad=Keypad(mode=DIGIT))
    played(call, answer(call, "r1", 1000, 100), 1300)
    call.carrier_dtmf("1", 2000)  # an entry: a message and a response asked for
    assert tick(call, 6300) == []  # the response it asked for is awaited (for a few seconds at most)
    played(call, answer(call, "r2", 1000, 2100), 3300)
    assert tick(call, 8299) == [] and tick(call, 8300) == [CHECK_IN]


def test_a_running_tool_suspends_it_and_its_answer_starts_it_again():
    call = ready(reprompt_s=5)
    played(call, answer(call, "r1", 1000, 100), 1300)
    call.upstream_event(ResponseCreated("r2"), 1900)
    call.upstream_event(ToolCall("call_1", "order_status", "{}", "item_F1", "r2"), 2000)
    call.upstream_event(ResponseDone("r2", "completed"), 2050)
    assert tick(call, 6300) == [] and tick(call, 8900) == [] and call.idle_tick_s(8900) is None
    assert acts(call.tool_result(ToolResult("call_1", "{}"), 9000)) == [SendToolOutput("call_1", "{}"),
                                                                         RequestResponse()]
    played(call, answer(call, "r3", 400, 9100), 9600)
    assert tick(call, 14599) == [] and tick(call, 14600) == [CHECK_IN]


def test_idle_hangup_after_the_goodbye_was_heard():
    call = ready(reprompt_s=5, hangup_s=10)
    played(call, answer(call, "r1", 1000, 100), 1300)
    assert tick(call, 6300) == [CHECK_IN]
    played(call, answer(call, "r2", 1000, 6400), 7500)  # the check-in played until 7500
    # 5 s of silence counted before the check-in; its own 1.2 s are not silence, and do not start the count
    # again: the caller has the other 5 s to answer it.
    assert call.silent_since(7500) == 2500
    assert call.idle_tick_s(7500) == pytest.approx(5.0)
    assert tick(call, 12499) == []
    actions = call.tick(12500, carrier_backed_up=False, upstream_backed_up=False)
    assert acts(actions) == [GOODBYE_ASKED]
    assert [n.event for n in actions if isinstance(n, Note)] == ["idle_goodbye"]
    marks = answer(call, "r3", 800, 12600)  # the goodbye: played 12600 .. 13500
    assert tick(call, 13000) == []  # still playing: no hang-up yet
    hangup = played(call, marks, 13500)
    assert acts(hangup) == [Hangup("idle", "the caller was silent for 10 s", carrier_hangup=True)]
    assert next(n for n in hangup if isinstance(n, Note)).fields == {"heard": True, "waited_ms": 1000}
    assert call.ended and tick(call, 20_000) == []


def test_idle_hangup_at_the_bound_when_the_goodbye_never_plays():
    call = ready(hangup_s=10)
    assert tick(call, 10_000) == [GOODBYE_ASKED]
    answer(call, "r1", 800, 10_100)  # its marks never come back
    assert call.tick_interval_s(10_200) <= 0.25
    assert tick(call, 14_999) == []
    hangup = call.tick(15_000, carrier_backed_up=False, upstream_backed_up=False)
    assert acts(hangup) == [Hangup("idle", "the caller was silent for 10 s", carrier_hangup=True)]
    assert next(n for n in hangup if isinstance(n, Note)).fields["heard"] is False


def test_the_caller_speaking_during_the_goodbye_calls_the_hangup_off():
    call = ready(reprompt_s=5, hangup_s=10)
    assert tick(call, 5000) == [CHECK_IN]
    call.upstream_event(ResponseCreated("r1"), 5100)
    call.upstream_event(ResponseDone("r1", "completed"), 5200)
    assert tick(call, 10_199) == []  # the check-in (5000 .. 5200) does not count as silence
    assert tick(call, 10_200) == [GOODBYE_ASKED]
    call.upstream_event(ResponseCreated("r2"), 10_300)
    spoke = call.upstream_event(SpeechStarted("item_U1"), 10_400)
    assert "idle_hangup_cancelled" in [n.event for n in spoke if isinstance(n, Note)]
    assert call.departure is None and not call.ended
    call.upstream_event(SpeechStopped(10_600), 10_600)
    played(call, answer(call, "r3", 500, 10_700), 11_300)
    assert tick(call, 16_299) == [] and tick(call, 16_300) == [CHECK_IN]  # a new silence, a new check-in


def test_a_check_in_that_is_never_answered_does_not_hold_the_hangup_forever():
    call = ready(reprompt_s=5, hangup_s=10)
    assert tick(call, 5000) == [CHECK_IN]  # no response ever comes
    assert tick(call, 7999) == []  # the request is awaited for a while
    assert tick(call, 10_000) == [GOODBYE_ASKED]
