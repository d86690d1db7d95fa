"""The bench's smoke mode, as CI runs it: a few calls for a few seconds through both targets.

Correctness only (no frame lost either way, every truncate accepted and close to what the caller
played, barge-ins happened, every process gone at the end); times are reported, never asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from gateway.bench.report import TARGET_DEFINITIONS
from gateway.bench.wires import WIRES

ROOT = Path(__file__).resolve().parents[2]
TRUNCATION_BOUND_MS = 20.0


def _processes_tagged(tag: str) -> set[int]:
    """PIDs of live processes whose environment carries this tag (the bench passes it to its children)."""
    found = set()
    needle = f"BENCH_SMOKE_TAG={tag}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                found.add(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def smoke() -> dict:
    tag = uuid.uuid4().hex
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BENCH_SMOKE_TAG": tag}
    done = subprocess.run([sys.executable, "-m", "gateway.bench", "--smoke", "--json"], cwd=ROOT,
                          capture_output=True, timeout=120, env=env)
    assert done.returncode in (0, 1), done.stderr.decode(errors="replace")[-3000:]
    report = orjson.loads(done.stdout)
    report["_returncode"] = done.returncode
    report["_leftover"] = _processes_tagged(tag)
    return report


def test_smoke_runs_both_targets_and_passes(smoke: dict) -> None:
    assert [r["target"] for r in smoke["results"]] == ["gateway", "relay"]
    gateway = smoke["results"][0]
    assert gateway["carriers"] == list(WIRES)  # a mixed load: each carrier's protocol, correct end to end
    assert smoke["results"][1]["carriers"] == ["twilio"]
    assert set(gateway["targets_met"]) == set(gateway["target_values"]) == set(TARGET_DEFINITIONS)
    problems = {f"{r['target']}": r["problems"] for r in smoke["results"] if r["problems"]}
    assert smoke["ok"] and smoke["_returncode"] == 0, problems


@pytest.mark.parametrize("target", ["gateway", "relay"])
def test_no_frame_lost_and_barge_ins_happened(smoke: dict, target: str) -> None:
    r = next(r for r in smoke["results"] if r["target"] == target)
    assert r["calls_connected"] == r["calls"] >= 2
    assert r["call_error_count"] == 0, r["call_errors"]
    assert r["frames_sent"] > 0
    assert r["frames_lost_in"] == 0 and r["frames_lost_out"] == 0
    assert r["frames_duplicated_in"] == 0 and r["frames_out_of_order"] == 0
    assert r["media_without_stamp"] == 0
    assert r["barge_ins"] >= r["calls"], "every call barges in at least once"
    assert r["marks_echoed"] > 0 or target == "relay"  # the relay sends no marks
    assert r["upstream_errors"] == {}


def test_gateway_truncates_at_what_the_caller_played(smoke: dict) -> None:
    r = next(r for r in smoke["results"] if r["target"] == "gateway")
    assert r["truncates"] >= r["barge_ins"] > 0
    assert r["truncates_rejected"] == 0
    assert r["truncates_without_clear"] == 0
    assert r["truncation_abs_error_all_ms"]["max"] <= TRUNCATION_BOUND_MS
    assert r["stale_deltas_forwarded"] == 0  # the gateway drops the audio of a cut response


def test_every_process_is_gone(smoke: dict) -> None:
    assert smoke["_leftover"] == set()
