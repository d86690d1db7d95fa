"""The first-audio measurement runs each mode end to end (one call, no added latency): the pool modes
claim warm sessions, and the webhook mode's sessions were configured at the webhook. Figures are printed
by the command, never asserted."""

from __future__ import annotations

import argparse

from gateway.bench.first_audio import percentile, report, run_mode


def _args(**kw: object) -> argparse.Namespace:
    base = {"calls": 1, "warmup": 0, "handshake_ms": 0.0, "update_ms": 0.0, "gap_ms": 0.0, "pool": 1}
    return argparse.Namespace(**{**base, **kw})


async def test_each_mode_measures_and_claims_as_it_should():
    args = _args()
    results = [await run_mode(mode, args) for mode in ("dial", "pool", "webhook")]
    assert [len(r.latencies_ms) for r in results] == [1, 1, 1]
    assert [(r.warm_hits, r.configured) for r in results] == [(0, 0), (1, 0), (1, 1)]
    assert "webhook" in report(results, args)


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile([7.0], 95)) == (50.0, 95.0, 7.0)
