"""The bench's targets line: what each target is, its goal, and that it is reported, not asserted."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from gateway.bench import command
from gateway.bench.report import GOALS, TARGET_DEFINITIONS, target_values, targets_line, targets_met


def run_summary(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "cpu_ms_per_call_s": 6.0, "in_latency_ms": {"p99": 0.8}, "out_latency_ms": {"p99": 0.6},
        "barge_in_reaction_ms": {"p99": 3.4}, "truncation_abs_error_ms": {"p95": 2.1}, "rss_kb_per_call": 65.0,
        "truncates_rejected": 0, "frames_lost_in": 0, "frames_lost_out": 0,
    }
    return {**base, **over}


def test_each_target_is_compared_with_its_goal() -> None:
    values = target_values(run_summary(), {"cpu_ms_per_call_s": 5.0})
    assert values["cpu_ratio"] == pytest.approx(1.2)
    assert targets_met(values) == {
        "cpu_ratio": False, "in_p99_ms": True, "out_p99_ms": True, "reaction_p99_ms": False,
        "truncation_p95_ms": True, "rss_kb_per_call": True, "no_truncate_rejected": True, "no_frame_lost": True,
    }
    assert set(TARGET_DEFINITIONS) == set(values)


def test_the_line_shows_value_goal_and_verdict() -> None:
    values = target_values(run_summary(frames_lost_out=2), None)  # no relay run: no ratio
    line = targets_line("gateway x10", values)
    assert line.startswith("targets [gateway x10]: cpu_ratio - (not measured), in_p99_ms 0.8 <= 5 ok, ")
    assert "reaction_p99_ms 3.4 > 3 MISSED" in line and "rss_kb_per_call 65 <= 100 ok" in line
    assert line.endswith("no_truncate_rejected ok, no_frame_lost MISSED (2)")


def test_help_explains_the_targets_and_the_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench")
    command.add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "reported, not" in text and "exit status reflects correctness only" in text and "MISSED exits 0" in text
    for name, goal in GOALS.items():
        line = next(line for line in text.splitlines() if line.startswith(f"  {name} "))
        assert f"{goal:g}" in line, line
    assert "no_frame_lost" in text and "no_truncate_rejected" in text
