"""Keypad input in the core, on a fake clock: per digit, collected until the terminator, a pause or the length
cap; the commit key with turn detection off; answers held while a response is going; sensitive entries masked
in notes, the summary, transcripts and tool arguments, and in full for the model and a replacement session."""

import pytest

from gateway.core.call import Call
from gateway.core.events import (
    CommitInput,
    ConfigureSession,
    Greet,
    Note,
    Reconnect,
    RequestResponse,
    ResponseCreated,
    ResponseDone,
    RestoreConversation,
    SendUserText,
    SpeechStarted,
    ToolCall,
    TranscriptDone,
)
from gateway.core.keypad import COLLECT, DIGIT, OFF, Keypad


def acts(actions) -> list:
    return [a for a in actions if not isinstance(a, Note)]


def notes(actions, event: str) -> list[Note]:
    return [a for a in actions if isinstance(a, Note) and a.event == event]


def ready(keypad: Keypad, **kw) -> Call:
    call = Call(keypad=keypad, **kw)
    call.upstream_opened(0)
    return call


def press(call: Call, keys: str, start: float, gap: float = 200.0) -> list:
    out = []
    for i, key in enumerate(keys):
        out += call.carrier_dtmf(key, start + i * gap)
    return out


# --- per digit -------------------------------------------------------------------------------------

def test_each_digit_is_a_message_and_asks_for_an_answer():
    call = ready(Keypad(mode=DIGIT))
    assert acts(call.carrier_dtmf("4", 100)) == [SendUserText("The caller pressed 4 on the keypad."), RequestResponse()]
    assert call.stats.dtmf == 1 and call.stats.keypad == [{"digits": "4", "count": 1, "sensitive": False}]
    call.upstream_event(ResponseCreated("r1"), 150)
    # A key while that answer is going: held with its request, like a tool's output.
    assert acts(call.carrier_dtmf("7", 200)) == []
    assert acts(call.upstream_event(ResponseDone("r1", "completed"), 900)) == [
        SendUserText("The caller pressed 7 on the keypad."), RequestResponse()]


def test_the_template_words_the_message():
    call = ready(Keypad(mode=DIGIT, template="[keypad: {digits}]"))
    assert acts(call.carrier_dtmf("#", 100))[0] == SendUserText("[keypad: #]")


def test_off_only_counts_and_logs():
    call = ready(Keypad(mode=OFF))
    actions = press(call, "12#", 100)
    assert acts(actions) == [] and call.stats.dtmf == 3
    assert [n.fields for n in notes(actions, "dtmf")] == [{"digit": "1"}, {"digit": "2"}, {"digit": "#"}]


def test_what_is_not_a_key_is_ignored_with_a_warning():
    call = ready(Keypad(mode=DIGIT))
    actions = call.carrier_dtmf("x", 100)
    assert acts(actions) == [] and call.stats.dtmf == 0
    assert notes(actions, "dtmf_ignored")[0].level == "warning"
    # A face handing over two keys at once: two presses.
    assert [a.text for a in acts(call.carrier_dtmf("12", 200)) if isinstance(a, SendUserText)] == [
        "The caller pressed 1 on the keypad.", "The caller pressed 2 on the keypad."]


# --- collected -------------------------------------------------------------------------------------

def test_collected_until_the_terminator_which_is_not_part_of_it():
    call = ready(Keypad(mode=COLLECT))
    assert acts(press(call, "4711", 100)) == []
    assert acts(call.carrier_dtmf("#", 1000)) == [SendUserText("The caller entered 4711 on the keypad."),
                                                  RequestResponse()]
    assert acts(call.carrier_dtmf("#", 1200)) == []  # a terminator alone: nothing to send


def test_collected_until_a_pause_measured_on_the_calls_clock():
    call = ready(Keypad(mode=COLLECT, pause_s=3.0))
    press(call, "12", 100, gap=400)  # the last key at 500
    assert call.tick_interval_s(500) == pytest.approx(1.0)  # the stall watch's second comes first
    assert call.keypad_tick_s(2000) == pytest.approx(1.5)
    assert acts(call.tick(3499, carrier_backed_up=False, upstream_backed_up=False)) == []
    assert acts(call.tick(3500, carrier_backed_up=False, upstream_backed_up=False)) == [
        SendUserText("The caller entered 12 on the keypad."), RequestResponse()]
    assert call.keypad_tick_s(3600) is None


def test_a_key_restarts_the_pause():
    call = ready(Keypad(mode=COLLECT, pause_s=1.0))
    call.carrier_dtmf("1", 0)
    call.carrier_dtmf("2", 900)
    assert acts(call.tick(1000, carrier_backed_up=False, upstream_backed_up=False)) == []
    assert acts(call.tick(1900, carrier_backed_up=False, upstream_backed_up=False))[0] == SendUserText(
        "The caller entered 12 on the keypad.")


def test_collected_until_the_length_cap():
    call = ready(Keypad(mode=COLLECT, max_digits=3, terminator=None))
    assert acts(press(call, "123", 0))[0] == SendUserText("The caller entered 123 on the keypad.")
    assert acts(call.carrier_dtmf("#", 1000)) == []  # no terminator: # is a key like any other, collected


# --- the commit key (turn detection off) -----------------------------------------------------------------

def test_the_commit_key_ends_the_callers_turn_then_asks_for_the_answer():
    call = ready(Keypad(mode=COLLECT, commit_key="*"), commit_turns=True)
    press(call, "12", 100)
    actions = acts(call.carrier_dtmf("*", 800))
    # The caller's audio first, then what they keyed in, then one answer to both.
    assert actions == [CommitInput(), SendUserText("The caller entered 12 on the keypad."), RequestResponse()]
    assert call.stats.turns == 1


def test_the_commit_key_alone_commits_and_answers():
    call = ready(Keypad(mode=OFF, commit_key="#"), commit_turns=True)
    actions = call.carrier_dtmf("#", 500)
    assert acts(actions) == [CommitInput(), RequestResponse()]
    assert notes(actions, "turn_committed")[0].fields == {"key": "#"}


def test_the_commit_key_waits_for_a_response_that_is_going():
    call = ready(Keypad(mode=OFF, commit_key="#"), commit_turns=True)
    call.upstream_event(ResponseCreated("r1"), 0)
    assert acts(call.carrier_dtmf("#", 500)) == [CommitInput()]  # the audio is committed at once
    assert acts(call.upstream_event(ResponseDone("r1", "completed"), 900)) == [RequestResponse()]


def test_with_turn_detection_on_the_commit_key_is_a_key_like_any_other():
    call = ready(Keypad(mode=DIGIT, commit_key="#"), commit_turns=False)
    assert acts(call.carrier_dtmf("#", 500)) == [SendUserText("The caller pressed # on the keypad."),
                                                 RequestResponse()]


def test_caller_speech_answers_a_held_entry():
    call = ready(Keypad(mode=DIGIT))
    call.upstream_event(ResponseCreated("r1"), 0)
    call.carrier_dtmf("5", 100)
    barge = acts(call.upstream_event(SpeechStarted("item_U1"), 200))  # the caller's turn will answer it
    assert SendUserText("The caller pressed 5 on the keypad.") in barge and RequestResponse() not in barge


# --- sensitive entries -----------------------------------------------------------------------------------

def test_a_sensitive_entry_is_masked_everywhere_but_for_the_model():
    call = ready(Keypad(mode=COLLECT, sensitive=True), sensitive_tools=frozenset())
    actions = press(call, "4321#", 0)
    assert [n.fields for n in notes(actions, "dtmf")] == [{"masked": True}] * 5
    assert notes(actions, "keypad_input")[0].fields == {"digits": "****", "count": 4, "mode": "collect"}
    assert call.stats.keypad == [{"digits": "****", "count": 4, "sensitive": True}]
    assert SendUserText("The caller entered 4321 on the keypad.") in actions  # the model gets it
    # The model reads it back, spaced out; the logged transcript and the tool arguments are masked.
    text = "You entered 4 3 2 1, and 4321. Order 143210."
    said = call.upstream_event(TranscriptDone("assistant", "item_A1", text), 900)
    assert notes(said, "transcript")[0].fields["text"] == "You entered ****, and ****. Order 143210."
    assert call.stats.transcript[0]["text"] == "You entered ****, and ****. Order 143210."
    tool = call.upstream_event(ToolCall("call_1", "verify_pin", '{"pin":"4321"}', "item_F1", "r1"), 1000)
    assert notes(tool, "tool_call")[0].fields["arguments"] == '{"pin":"****"}'
    assert call.stats.tool_calls[0]["arguments"] == '{"pin":"****"}'


def test_keypad_entries_are_replayed_to_a_new_session():
    call = ready(Keypad(mode=COLLECT, sensitive=True), max_reconnects=2)
    press(call, "99#", 0)
    call.upstream_event(ResponseCreated("r1"), 700)
    lost = call.upstream_lost("closed", "upstream closed the session", 800)
    assert any(isinstance(a, Reconnect) for a in lost)
    reopened = call.upstream_reopened(1000)
    restore = next(a for a in reopened if isinstance(a, RestoreConversation))
    assert ("user", "The caller entered 99 on the keypad.") in restore.turns


def test_an_entry_while_the_session_is_being_replaced_is_replayed_and_answered():
    call = ready(Keypad(mode=DIGIT), max_reconnects=2)
    call.upstream_lost("closed", "upstream closed the session", 100)
    assert acts(call.carrier_dtmf("3", 200)) == []  # no session: nothing sent now
    reopened = call.upstream_reopened(1000)
    restore = next(a for a in reopened if isinstance(a, RestoreConversation))
    assert restore.turns == (("user", "The caller pressed 3 on the keypad."),)
    assert reopened[-1] == RequestResponse()


def test_keys_before_the_first_session_go_to_it_when_it_opens():
    call = Call(keypad=Keypad(mode=DIGIT))
    assert acts(call.carrier_dtmf("1", 50)) == []  # no session yet
    assert call.upstream_opened(200) == (ConfigureSession(), SendUserText("The caller pressed 1 on the keypad."),
                                         RequestResponse())


def test_with_a_greeting_the_keys_answer_waits_for_it():
    call = Call(keypad=Keypad(mode=DIGIT), greeting="Hello!")
    call.carrier_dtmf("1", 50)
    assert call.upstream_opened(200) == (ConfigureSession(), Greet("Hello!"),
                                         SendUserText("The caller pressed 1 on the keypad."))
    call.upstream_event(ResponseCreated("r1"), 300)  # the greeting
    assert acts(call.upstream_event(ResponseDone("r1", "completed"), 900)) == [RequestResponse()]
