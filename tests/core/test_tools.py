"""Function calls in the core, on a fake clock: run, answer, ask for the response; end_call and transfer_call
leave the call only once the agent's last words have been heard; function items survive a reconnect."""

import base64

import pytest

from gateway.core.call import Call
from gateway.core.events import (
    AudioDelta,
    AudioDone,
    EndCall,
    Hangup,
    Inform,
    Note,
    Reconnect,
    RequestResponse,
    ResponseCreated,
    ResponseDone,
    RestoreConversation,
    RunTool,
    Say,
    SendMark,
    SendToolOutput,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    ToolResult,
    TransferCall,
    TransferTo,
)


def audio(ms: int) -> str:
    return base64.b64encode(b"\xff" * (8 * ms)).decode()


def acts(actions) -> list:
    return [a for a in actions if not isinstance(a, Note)]


def ready_call(**kw) -> Call:
    call = Call(**kw)
    call.upstream_opened(0)
    return call


def call_tool(call: Call, now: float, call_id="call_1", name="order_status", arguments='{"order_id":"4711"}',
              response="r1") -> tuple:
    return call.upstream_event(ToolCall(call_id, name, arguments, f"item_{call_id}", response), now)


def speak(call: Call, rid: str, item: str, ms: int, now: float, *, chunk_ms: int = 100) -> list[str]:
    """Audio of `ms` in chunks, then its end: the names of the marks sent."""
    marks = []
    for i in range(0, ms, chunk_ms):
        marks += [a.name for a in call.upstream_event(AudioDelta(rid, item, 0, audio(min(chunk_ms, ms - i))), now)
                  if isinstance(a, SendMark)]
    marks += [a.name for a in call.upstream_event(AudioDone(item), now) if isinstance(a, SendMark)]
    return marks


# --- run, answer, respond --------------------------------------------------------------------------

def test_a_call_is_run_once_and_recorded():
    call = ready_call()
    call.upstream_event(ResponseCreated("r1"), 0)
    actions = call_tool(call, 10)
    assert acts(actions) == [RunTool("call_1", "order_status", '{"order_id":"4711"}')]
    note = next(a for a in actions if isinstance(a, Note))
    assert note.event == "tool_call" and note.fields["arguments"] == '{"order_id":"4711"}'
    assert call_tool(call, 11) == ()  # the same call id again (the item's done event): not run twice
    assert call.stats.tool_calls == [{"name": "order_status", "call_id": "call_1", "outcome": None,
                                      "duration_ms": None, "arguments": '{"order_id":"4711"}'}]


def test_output_waits_for_the_response_that_called_then_asks_for_one():
    call = ready_call()
    call.upstream_event(ResponseCreated("r1"), 0)
    call_tool(call, 10)
    # A fast tool: its result comes while the response that called it is still going.
    assert acts(call.tool_result(ToolResult("call_1", '{"status":"shipped"}'), 50)) == []
    done = call.upstream_event(ResponseDone("r1", "completed"), 80)
    assert acts(done) == [SendToolOutput("call_1", '{"status":"shipped"}'), RequestResponse()]
    assert call.stats.tool_calls[0]["outcome"] == "ok" and call.stats.tool_calls[0]["duration_ms"] == 40
    assert call.stats.tool_results == [("order_status", "ok", 40.0)]


def test_a_slow_tool_is_answered_and_responded_to_at_once():
    call = ready_call()
    call.upstream_event(ResponseCreated("r1"), 0)
    call_tool(call, 10)
    call.upstream_event(ResponseDone("r1", "completed"), 20)
    assert acts(call.tool_result(ToolResult("call_1", "{}"), 2000)) == [SendToolOutput("call_1", "{}"),
                                                                          RequestResponse()]
    call.upstream_event(ResponseCreated("r2"), 2010)  # the answer to the output: nothing more asked
    assert acts(call.upstream_event(ResponseDone("r2", "completed"), 3000)) == []


def test_the_caller_speaking_meanwhile_gets_the_output_added_but_no_response():
    call = ready_call()
    call.upstream_event(ResponseCreated("r1"), 0)
    call_tool(call, 10)
    call.upstream_event(ResponseDone("r1", "completed"), 20)
    call.upstream_event(SpeechStarted("item_U2"), 500)
    assert acts(call.tool_result(ToolResult("call_1", "{}"), 900)) == [SendToolOutput("call_1", "{}")]
    call.upstream_event(SpeechStopped(1500), 1500)  # the caller's turn: the server's VAD answers it
    assert RequestResponse() not in call.upstream_event(ResponseDone("r2", "completed"), 2500)


def test_speech_while_the_output_is_held_cancels_the_response_request():
    call = ready_call()
    call.upstream_event(ResponseCreated("r1"), 0)
    call_tool(call, 10)
    assert acts(call.tool_result(ToolResult("call_1", "{}"), 20)) == []  # held: r1 is going
    barge = call.upstream_event(SpeechStarted("item_U2"), 30)  # r1 dropped; the output goes, no response
    assert SendToolOutput("call_1", "{}") in barge and RequestResponse() not in barge
    assert acts(call.upstream_event(ResponseDone("r1", "cancelled"), 40)) == []


def test_one_response_after_every_call_of_the_turn_is_answered():
    call = ready_call()
    call.upstream_event(ResponseCreated("r1"), 0)
    call_tool(call, 10, "call_a")
    call_tool(call, 11, "call_b", arguments="{}")
    call.upstream_event(ResponseDone("r1", "completed"), 20)
    assert acts(call.tool_result(ToolResult("call_a", "A"), 100)) == [SendToolOutput("call_a", "A")]
    assert acts(call.tool_result(ToolResult("call_b", "B"), 300)) == [SendToolOutput("call_b", "B"),
                                                                        RequestResponse()]


def test_error_results_are_answered_like_any_output():
    call = ready_call()
    call_tool(call, 0, arguments="{not json")
    out = call.tool_result(ToolResult("call_1", '{"error":"not JSON"}', "bad_arguments"), 1)
    assert acts(out) == [SendToolOutput("call_1", '{"error":"not JSON"}'), RequestResponse()]
    assert next(a for a in out if isinstance(a, Note)).level == "warning"
    assert call.stats.tool_results[0][1] == "bad_arguments"


def test_a_result_nobody_asked_for_is_ignored():
    assert ready_call().tool_result(ToolResult("call_zz", "{}"), 5) == ()


def test_sensitive_arguments_are_not_kept():
    call = ready_call(sensitive_tools=frozenset({"card_check"}))
    actions = call_tool(call, 0, name="card_check", arguments='{"pan":"4111111111111111"}')
    assert "arguments" not in call.stats.tool_calls[0]
    assert all("4111" not in str(a) for a in actions if isinstance(a, Note))
    assert RunTool("call_1", "card_check", '{"pan":"4111111111111111"}') in actions  # the runner needs them


def test_tools_running_when_the_call_ends_are_cancelled():
    call = ready_call()
    call_tool(call, 0)
    call.carrier_stop(100)
    call.tools_cancelled(250)
    assert call.stats.tool_calls[0]["outcome"] == "cancelled"
    assert call.stats.tool_results == [("order_status", "cancelled", 250.0)]
    assert call.tool_result(ToolResult("call_1", "{}"), 300) == ()  # too late: nothing to say


def test_a_running_tool_is_not_a_quiet_moment_for_renewal():
    call = ready_call(session_max_s=1)
    call_tool(call, 0)
    assert call.tick(5000, carrier_backed_up=False, upstream_backed_up=False) == ()
    call.tool_result(ToolResult("call_1", "{}"), 5100)
    call.upstream_event(ResponseCreated("r2"), 5110)
    call.upstream_event(ResponseDone("r2", "completed"), 5200)
    renewed = call.tick(9000, carrier_backed_up=False, upstream_backed_up=False)
    assert any(isinstance(a, Reconnect) for a in renewed)


# --- end_call ----------------------------------------------------------------------------------------

END = EndCall("caller is done", 10.0)


def end_call_after_goodbye(call: Call, *, call_first: bool) -> list[str]:
    """r1 says a 1000 ms goodbye and calls end_call, the call before or after the audio; returns its marks."""
    call.upstream_event(ResponseCreated("r1"), 0)
    marks = []
    if call_first:
        assert acts(call_tool(call, 5, name="end_call", arguments="{}")) == [RunTool("call_1", "end_call", "{}")]
        assert acts(call.tool_result(ToolResult("call_1", "ok", "ok", END), 6)) == []
    marks = speak(call, "r1", "item_bye", 1000, 10)
    if not call_first:
        call_tool(call, 20, name="end_call", arguments="{}")
        assert acts(call.tool_result(ToolResult("call_1", "ok", "ok", END), 21)) == []
    done = call.upstream_event(ResponseDone("r1", "completed"), 30)
    assert acts(done) == [SendToolOutput("call_1", "ok")]  # answered; no response asked after end_call
    return marks


@pytest.mark.parametrize("call_first", [True, False])
def test_end_call_hangs_up_when_the_goodbyes_last_mark_is_echoed(call_first):
    call = ready_call()
    marks = end_call_after_goodbye(call, call_first=call_first)
    for name in marks[:-1]:  # played up to its last chunk: still playing
        assert call.carrier_mark(name, 1000) == ()
    assert call.tick(1005, carrier_backed_up=False, upstream_backed_up=False) == ()
    hangup = acts(call.carrier_mark(marks[-1], 1011))  # the mark after the goodbye's last chunk
    assert hangup == [Hangup("agent_ended", "the agent ended the call (caller is done)", carrier_hangup=True)]
    assert call.ended
    assert call.carrier_mark(marks[-1], 1012) == ()


def test_end_call_waits_for_a_goodbye_still_to_come_in_the_same_response():
    call = ready_call()
    call.upstream_event(ResponseCreated("r1"), 0)
    call_tool(call, 5, name="end_call", arguments="{}")
    assert acts(call.tool_result(ToolResult("call_1", "ok", "ok", END), 6)) == []
    # Nothing plays yet, but r1 is not done: its goodbye may still come.
    assert call.tick(500, carrier_backed_up=False, upstream_backed_up=False) == ()
    marks = speak(call, "r1", "item_bye", 600, 600)
    call.upstream_event(ResponseDone("r1", "completed"), 610)
    assert [a for a in call.carrier_mark(marks[-1], 1300) if isinstance(a, Hangup)]


def test_end_call_without_marks_hangs_up_on_the_clock_estimate():
    call = ready_call(marks=False)
    end_call_after_goodbye(call, call_first=False)  # 1000 ms of audio sent at 10 ms
    assert call.tick_interval_s(30) <= 0.25
    assert call.tick(900, carrier_backed_up=False, upstream_backed_up=False) == ()  # 890 ms played
    assert 0.1 <= call.tick_interval_s(900) <= 0.12  # looks again when the rest should have played
    hangup = acts(call.tick(1011, carrier_backed_up=False, upstream_backed_up=False))
    assert hangup and isinstance(hangup[0], Hangup) and hangup[0].outcome == "agent_ended"


def test_end_call_hangs_up_at_the_bounded_wait_when_no_mark_comes_back():
    call = ready_call()
    end_call_after_goodbye(call, call_first=True)  # armed at 6 ms, max_wait_s 10
    assert call.tick(10_005, carrier_backed_up=False, upstream_backed_up=False) == ()
    actions = call.tick(10_006, carrier_backed_up=False, upstream_backed_up=False)
    assert next(a for a in actions if isinstance(a, Hangup)).outcome == "agent_ended"
    note = next(a for a in actions if isinstance(a, Note))
    assert note.event == "agent_ended_call" and note.fields == {"heard": False, "waited_ms": 10_000}


def test_end_call_with_nothing_left_to_say_hangs_up_at_once():
    call = ready_call()
    call_tool(call, 0, name="end_call", arguments="{}")
    actions = acts(call.tool_result(ToolResult("call_1", "ok", "ok", EndCall()), 1))
    assert actions[0] == SendToolOutput("call_1", "ok") and isinstance(actions[1], Hangup)


def test_no_new_response_once_the_call_is_ending():
    call = ready_call()
    call.upstream_event(ResponseCreated("r1"), 0)
    call_tool(call, 1, "call_a")
    call_tool(call, 2, "call_b", name="end_call", arguments="{}")
    call.tool_result(ToolResult("call_b", "ok", "ok", END), 3)
    call.tool_result(ToolResult("call_a", "{}"), 4)
    assert RequestResponse() not in call.upstream_event(ResponseDone("r1", "completed"), 5)


# --- transfer_call -----------------------------------------------------------------------------------

def test_transfer_says_its_handoff_line_then_transfers_once_it_has_been_heard():
    call = ready_call()
    call.upstream_event(ResponseCreated("r1"), 0)
    call_tool(call, 5, name="transfer_call", arguments='{"destination":"sales"}')
    then = TransferTo("sales", "Connecting you with sales.", 10.0)
    assert acts(call.tool_result(ToolResult("call_1", '{"ok":true}', "ok", then), 6)) == []
    after = acts(call.upstream_event(ResponseDone("r1", "completed"), 10))
    assert after == [SendToolOutput("call_1", '{"ok":true}'), Say("Connecting you with sales.")]
    assert call.tick(200, carrier_backed_up=False, upstream_backed_up=False) == ()  # the line not started yet
    call.upstream_event(ResponseCreated("r2"), 300)
    marks = speak(call, "r2", "item_handoff", 800, 310)
    assert acts(call.upstream_event(ResponseDone("r2", "completed"), 320)) == []
    assert acts(call.carrier_mark(marks[-1], 1110)) == [TransferCall("sales")]
    assert not call.ended  # until the carrier moved the call
    assert call.transfer_result("transferred", 1500) == ()
    assert call.ended and call.stats.transfers == ["transferred"]


def test_a_failed_transfer_keeps_the_call_and_tells_the_model():
    call = ready_call()
    call_tool(call, 0, name="transfer_call", arguments='{"destination":"sales"}')
    actions = acts(call.tool_result(ToolResult("call_1", "{}", "ok", TransferTo("sales")), 1))
    assert actions == [SendToolOutput("call_1", "{}"), TransferCall("sales")]
    failed = acts(call.transfer_result("unavailable", 50))
    assert isinstance(failed[0], Inform) and "sales" in failed[0].text and failed[1] == RequestResponse()
    assert not call.ended and call.departure is None
    assert call.stats.transfers == ["unavailable"]


def test_a_refused_destination_is_answered_and_counted():
    call = ready_call()
    call_tool(call, 0, name="transfer_call", arguments='{"destination":"+19995550000"}')
    out = acts(call.tool_result(ToolResult("call_1", '{"error":"not allowed"}', "refused"), 1))
    assert out == [SendToolOutput("call_1", '{"error":"not allowed"}'), RequestResponse()]
    assert call.stats.transfers == ["refused"] and call.departure is None


# --- across a reconnect ------------------------------------------------------------------------------

def test_function_items_are_replayed_to_a_replacement_session_in_order():
    call = ready_call(max_reconnects=2)
    call.upstream_event(SpeechStarted("item_U1"), 0)
    call.upstream_event(SpeechStopped(500), 500)
    call.upstream_event(ResponseCreated("r1"), 600)
    call_tool(call, 610)
    call.upstream_event(ResponseDone("r1", "completed"), 620)
    call.tool_result(ToolResult("call_1", '{"status":"shipped"}'), 700)
    call.upstream_closed(1006, "", 800)
    reopened = call.upstream_reopened(900)
    restore = next(a for a in reopened if isinstance(a, RestoreConversation))
    assert restore.turns == (("function_call", "call_1", "order_status", '{"order_id":"4711"}'),
                             ("function_call_output", "call_1", '{"status":"shipped"}'))


def test_a_tool_finishing_during_a_reconnect_is_replayed_and_answered():
    call = ready_call(max_reconnects=2)
    call.upstream_event(ResponseCreated("r1"), 0)
    call_tool(call, 10)
    call.upstream_closed(1006, "", 20)  # the session drops while the tool runs
    assert acts(call.tool_result(ToolResult("call_1", "{}"), 50)) == []  # no session to send it to
    reopened = call.upstream_reopened(100)
    restore = next(a for a in reopened if isinstance(a, RestoreConversation))
    assert restore.turns[-1] == ("function_call_output", "call_1", "{}")
    assert not any(isinstance(a, SendToolOutput) for a in reopened)  # in the replay, not twice
    assert reopened[-1] == RequestResponse()


def test_replay_never_has_an_output_without_its_call():
    call = ready_call()
    call.conversation.function_output("call_orphan", "{}")
    call.conversation.function_call("item_F", "call_1", "x", "{}")
    call.conversation.function_output("call_1", "ok")
    assert call.conversation.replay() == (("function_call", "call_1", "x", "{}"),
                                          ("function_call_output", "call_1", "ok"))


def test_keys_sent_ask_for_no_response_the_far_end_answers():
    from gateway.core.events import Listen

    call = ready_call()
    call.upstream_event(ResponseCreated("r1"), 0)
    call_tool(call, 10, name="send_dtmf", arguments='{"digits":"1"}')
    call.upstream_event(ResponseDone("r1", "completed"), 20)
    out = '{"ok":true,"keys_sent":1}'
    assert acts(call.tool_result(ToolResult("call_1", out, "ok", Listen()), 100)) == [SendToolOutput("call_1", out)]
    assert call.departure is None and not call.tools_busy
