"""Who answered an outbound call, on a fake clock: until the detection's result the greeting, the callee's
audio and keys and the silence timers wait; a person (or no result within the bound) starts the
conversation; a machine gets a hang-up, the model's message (hung up once it has been heard, or at its
bound) or the carrier's; a result nobody waits for is ignored; inbound calls are untouched."""

import base64

import pytest

from gateway.agents.profile import Voicemail
from gateway.core.answering import CALLEE_ANSWERED, DEFAULT_MESSAGE, SPEAK_MESSAGE
from gateway.core.call import Call
from gateway.core.events import (
    AppendAudio,
    AudioDelta,
    AudioDone,
    ConfigureSession,
    Greet,
    Hangup,
    LeaveMessage,
    Note,
    Reconnect,
    RequestResponse,
    ResponseCreated,
    ResponseDone,
    RestoreConversation,
    SendMark,
    SendUserText,
    SpeechStopped,
)
from gateway.core.idle import REPROMPT, IdlePolicy
from gateway.core.keypad import DIGIT, Keypad

MESSAGE = "Say it is Acme Dental about tomorrow's appointment, and ask them to call 555 0100."
SPEAK = Voicemail("speak", MESSAGE)
LEFT = RequestResponse(SPEAK_MESSAGE.format(message=MESSAGE), "voicemail")
MACHINE_HANGUP = Hangup("voicemail", "answered by a machine", carrier_hangup=True)
MESSAGE_HEARD = Hangup("voicemail", "answered by a machine: the agent left a message", carrier_hangup=True)


def audio(ms: int) -> str:
    return base64.b64encode(b"\xff" * (8 * ms)).decode()


FRAME = audio(20)


def acts(actions) -> list:
    return [a for a in actions if not isinstance(a, Note)]


def notes(actions) -> list[Note]:
    return [a for a in actions if isinstance(a, Note)]


def tick(call: Call, now: float) -> tuple:
    return call.tick(now, carrier_backed_up=False, upstream_backed_up=False)


def detecting(*, opened_at: float | None = 100, **kw) -> Call:
    """An outbound call whose answer is detected from its stream's start at 0 (bound: 30 s); its session
    opens at `opened_at` (None: not yet)."""
    call = Call(**kw)
    call.expect_answer(0, message_max_wait_s=10.0)
    if opened_at is not None:
        assert call.upstream_opened(opened_at) == (ConfigureSession(),)  # no greeting yet
    return call


def speak(call: Call, rid: str, ms: int, now: float) -> list[str]:
    """A response of `ms` of audio in 100 ms chunks sent at `now`, done at `now + 10`: its marks' names."""
    call.upstream_event(ResponseCreated(rid), now)
    marks = []
    for _ in range(0, ms, 100):
        marks += [a.name for a in call.upstream_event(AudioDelta(rid, f"item_{rid}", 0, audio(100)), now)
                  if isinstance(a, SendMark)]
    marks += [a.name for a in call.upstream_event(AudioDone(f"item_{rid}"), now) if isinstance(a, SendMark)]
    call.upstream_event(ResponseDone(rid, "completed"), now + 10)
    return marks


# --- a person -----------------------------------------------------------------------------------------

def test_the_greeting_and_the_callees_audio_wait_for_a_person():
    call = detecting(greeting="Hi, this is Acme Dental.")
    for t in range(200, 4000, 20):
        assert call.carrier_audio(FRAME, t) == ()  # the model does not hear the callee yet
    assert call.stats.frames_amd_held == 190 and call.stats.frames_in == 0
    actions = call.answered_by("human", SPEAK, 4000)
    assert acts(actions) == [Greet("Hi, this is Acme Dental.")]
    assert notes(actions)[0].fields == {"answered_by": "human", "waited_ms": 4000, "frames_held": 190}
    assert call.carrier_audio(FRAME, 4020) == (AppendAudio(FRAME),)
    assert call.stats.answered_by == "human" and call.stats.answer_wait_ms == 4000
    assert call.stats.frames_amd_held == 190 and call.stats.frames_in == 1


def test_a_person_before_the_session_opens_is_greeted_when_it_opens():
    call = detecting(greeting="Hello!", opened_at=None)
    assert call.carrier_audio(FRAME, 20) == ()
    assert acts(call.answered_by("human", None, 50)) == []
    assert call.carrier_audio(FRAME, 60) == ()  # waits for the session, as any caller audio does
    assert call.upstream_opened(100) == (ConfigureSession(), Greet("Hello!"), AppendAudio(FRAME))
    assert call.stats.frames_amd_held == 1


def test_without_a_greeting_the_model_is_asked_to_open_the_call():
    # What the person said while the answer was unknown was held back: waiting for their words would leave
    # both sides silent.
    call = detecting()
    assert acts(call.answered_by("human", None, 3000)) == [RequestResponse(CALLEE_ANSWERED, "opening")]
    assert call.carrier_audio(FRAME, 3020) == (AppendAudio(FRAME),)
    assert acts(Call().upstream_opened(0)) == [ConfigureSession()]  # an inbound call without a greeting: nothing


@pytest.mark.parametrize(("kind", "given"), [("unknown", {}), ("fax", {"given": "fax"})])
def test_unknown_is_taken_for_a_person(kind, given):
    call = detecting(greeting="Hello!")
    actions = call.answered_by(kind, SPEAK, 2000)
    assert acts(actions) == [Greet("Hello!")]
    assert notes(actions)[0].fields == {"answered_by": "unknown", "waited_ms": 2000, "frames_held": 0, **given}
    assert call.stats.answered_by == "unknown"


def test_held_audio_is_not_on_the_sessions_input_timeline():
    call = detecting()
    for t in range(100, 2100, 20):  # 2 s held
        call.carrier_audio(FRAME, t)
    call.answered_by("human", None, 2100)
    for t in range(2100, 3100, 20):  # 1 s sent: the session's input is 1000 ms long
        call.carrier_audio(FRAME, t)
    call.upstream_event(SpeechStopped(800), 3100)  # so the callee stopped 200 ms before the newest audio
    speak(call, "r1", 500, 3600)
    assert call.stats.turn_latencies_ms == [700.0]


def test_no_result_within_the_bound_is_taken_for_a_person():
    call = detecting(greeting="Hello!")
    assert call.tick_interval_s(29_500) == pytest.approx(0.5)
    assert tick(call, 29_999) == ()
    actions = tick(call, 30_000)
    assert acts(actions) == [Greet("Hello!")]
    assert notes(actions)[0].event == "answered_by_timeout" and notes(actions)[0].fields["timeout_s"] == 30.0
    assert call.stats.answered_by == "timeout" and call.stats.answer_wait_ms == 30_000
    assert call.carrier_audio(FRAME, 30_020) == (AppendAudio(FRAME),)
    late = call.answered_by("machine", SPEAK, 31_000)  # too late: the conversation has started
    assert acts(late) == [] and notes(late)[0].event == "answered_by_ignored"
    assert notes(late)[0].fields == {"answered_by": "machine", "reason": "already answered", "decided": "timeout"}
    assert not call.ended and call.stats.answered_by == "timeout"


def test_the_bound_is_configurable():
    call = Call(greeting="Hello!")
    call.expect_answer(1000, timeout_s=5.0)
    call.upstream_opened(1100)
    assert tick(call, 5999) == () and acts(tick(call, 6000)) == [Greet("Hello!")]


def test_the_silence_timers_wait_for_the_answer():
    call = detecting(idle=IdlePolicy(reprompt_s=5, reprompt_instructions="Still there?"))
    assert tick(call, 20_000) == ()  # 20 s of "silence" while the voicemail greeting plays: not counted
    assert call.silent_since(20_000) is None and call.idle_tick_s(20_000) is None
    call.answered_by("human", None, 20_000)  # the model is asked to open the call: a response of no audio
    call.upstream_event(ResponseCreated("r1"), 20_000)
    call.upstream_event(ResponseDone("r1", "completed", None), 20_000)
    assert call.idle_tick_s(20_000) == pytest.approx(5.0)  # counted from the answer, not the session's opening
    assert tick(call, 24_999) == ()
    assert acts(tick(call, 25_000)) == [RequestResponse("Still there?", REPROMPT)]


def test_keys_wait_for_the_answer():
    call = detecting(keypad=Keypad(mode=DIGIT))
    actions = call.carrier_dtmf("5", 1000)
    assert acts(actions) == [] and notes(actions)[0].event == "dtmf_ignored" and call.stats.dtmf == 0
    call.answered_by("human", None, 2000)
    assert SendUserText("The caller pressed 5 on the keypad.") in call.carrier_dtmf("5", 3000)


# --- a machine -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("voicemail", [Voicemail("hangup"), None])
def test_a_machine_is_hung_up_on_at_once(voicemail):
    call = detecting(greeting="Hello!")
    actions = call.answered_by("machine", voicemail, 12_000)
    assert acts(actions) == [MACHINE_HANGUP]
    assert call.ended and call.stats.answered_by == "machine"


def test_the_model_leaves_the_message_and_the_call_ends_once_it_has_been_heard():
    call = detecting(greeting="Hello!")  # the greeting is never spoken to a machine
    assert acts(call.answered_by("machine", SPEAK, 20_000)) == [LEFT]
    assert call.carrier_audio(FRAME, 20_050) == ()  # the machine is recording: the model does not hear it
    marks = speak(call, "r1", 3000, 20_100)  # played by the carrier 20_200 .. 23_200
    assert tick(call, 21_000) == ()
    for name in marks[:-1]:
        assert call.carrier_mark(name, 23_100) == ()
    actions = call.carrier_mark(marks[-1], 23_200)  # the echo of the mark after its last chunk
    assert acts(actions) == [MESSAGE_HEARD]
    assert notes(actions)[0].event == "voicemail_left" and notes(actions)[0].fields == {"heard": True,
                                                                                       "waited_ms": 3200}
    assert call.ended and call.stats.frames_amd_held == 1


def test_the_message_ends_the_call_at_its_bound_when_no_mark_comes_back():
    call = detecting()
    call.answered_by("machine", SPEAK, 20_000)  # message_max_wait_s 10
    speak(call, "r1", 3000, 20_100)
    assert tick(call, 29_999) == ()
    assert call.tick_interval_s(29_999) == pytest.approx(0.01)
    actions = tick(call, 30_000)
    assert acts(actions) == [MESSAGE_HEARD]
    assert notes(actions)[0].fields == {"heard": False, "waited_ms": 10_000}


def test_the_message_waits_for_its_response_to_be_done():
    call = detecting()
    call.answered_by("machine", SPEAK, 20_000)
    assert tick(call, 25_000) == ()  # asked for, not started: nothing has been said yet
    call.upstream_event(ResponseCreated("r1"), 25_100)
    assert tick(call, 26_000) == ()


def test_a_machine_before_the_session_opens_gets_the_message_when_it_opens():
    call = detecting(greeting="Hello!", opened_at=None)
    assert acts(call.answered_by("machine", SPEAK, 50)) == []
    assert call.upstream_opened(100) == (ConfigureSession(), LEFT)


def test_a_session_replaced_meanwhile_greets_once_a_person_answered():
    call = detecting(greeting="Hello!", max_reconnects=2)
    assert any(isinstance(a, Reconnect) for a in call.upstream_closed(1006, "", 1000))
    assert acts(call.answered_by("human", None, 1500)) == []  # no session: the next one greets
    assert call.upstream_reopened(1600) == (ConfigureSession(), RestoreConversation(()), Greet("Hello!"))
    call.upstream_closed(1006, "", 2000)
    assert Greet("Hello!") not in call.upstream_reopened(2100)  # once


def test_a_message_asked_for_without_words_gets_the_default():
    call = detecting()
    assert acts(call.answered_by("machine", Voicemail("speak"), 9000)) == [
        RequestResponse(SPEAK_MESSAGE.format(message=DEFAULT_MESSAGE), "voicemail")]


def test_the_carrier_says_a_fixed_message():
    call = detecting(greeting="Hello!")
    actions = call.answered_by("machine", Voicemail("say", "Please call Acme Dental back."), 15_000)
    assert acts(actions) == [LeaveMessage("Please call Acme Dental back.", "voicemail",
                                          "answered by a machine: the carrier leaves the message")]
    assert call.ended and tick(call, 50_000) == ()


def test_a_fixed_message_without_words_hangs_up():
    call = detecting()
    actions = call.answered_by("machine", Voicemail("say"), 15_000)
    assert acts(actions) == [MACHINE_HANGUP] and notes(actions)[1].event == "voicemail_not_left"


# --- results nobody waits for --------------------------------------------------------------------------

def test_a_second_result_is_ignored():
    call = detecting(greeting="Hello!")
    call.answered_by("human", None, 3000)
    actions = call.answered_by("machine", SPEAK, 4000)
    assert acts(actions) == [] and notes(actions)[0].fields["reason"] == "already answered"
    assert not call.ended and call.stats.answered_by == "human"


def test_a_result_after_the_call_ended_is_ignored():
    call = detecting()
    call.carrier_stop(5000)
    actions = call.answered_by("machine", SPEAK, 6000)
    assert acts(actions) == [] and notes(actions)[0].fields["reason"] == "the call has ended"
    assert call.stats.answered_by is None


def test_inbound_calls_are_untouched():
    call = Call(greeting="Hello!")
    assert call.upstream_opened(0) == (ConfigureSession(), Greet("Hello!"))
    assert call.carrier_audio(FRAME, 20) == (AppendAudio(FRAME),)
    assert call.tick_interval_s(100) == pytest.approx(1.0)
    actions = call.answered_by("machine", SPEAK, 1000)
    assert acts(actions) == [] and notes(actions)[0].fields["reason"] == "the answer was not being detected"
    assert not call.ended and call.stats.answered_by is None and call.stats.frames_amd_held == 0
