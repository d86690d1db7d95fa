"""`python -m gateway call`'s report: when the gateway hung up, how long after the agent's audio ended."""

from gateway.sim.call_command import format_report, gateway_hangup_after_audio
from gateway.sim.caller import CallReport


def report(*events: tuple[float, str, dict]) -> CallReport:
    return CallReport(events=list(events), closed_by="gateway" if any(e[1] == "closed_by_gateway" for e in events)
                      else "caller", close_code=1000)


def test_a_hang_up_after_the_last_audio_is_reported():
    r = report((100.0, "agent_audio_start", {}), (1340.0, "agent_audio_end", {"played_ms": 1240.0, "cleared": False}),
               (1352.0, "closed_by_gateway", {"code": 1000}))
    assert gateway_hangup_after_audio(r) == 12.0
    assert "the gateway hung up 12 ms after the agent's last audio finished playing" in format_report(r)


def test_no_such_line_when_audio_was_still_playing_or_the_caller_hung_up():
    playing = report((100.0, "agent_audio_start", {}), (300.0, "agent_audio_end", {"cleared": False}),
                     (400.0, "agent_audio_start", {}), (500.0, "closed_by_gateway", {}))
    assert gateway_hangup_after_audio(playing) is None
    caller = report((100.0, "agent_audio_start", {}), (300.0, "agent_audio_end", {"cleared": False}))
    assert gateway_hangup_after_audio(caller) is None
    silent = report((500.0, "closed_by_gateway", {}))
    assert gateway_hangup_after_audio(silent) is None
    assert "the gateway hung up" not in format_report(silent)
