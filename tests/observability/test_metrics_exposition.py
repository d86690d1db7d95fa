"""What /metrics shows before any call: the known label values at 0, and no `_created` series.

The app is built and scraped in a fresh interpreter: the metrics registry is per process, and the
other tests of this run have moved its counters, so only a new process shows what a gateway that has
just started exposes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.carriers import registry
from gateway.core.stats import TOKEN_KINDS
from gateway.observability import metrics

REPO = Path(__file__).resolve().parents[2]

SCRAPE = r"""
import asyncio
import sys

from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.config import load_settings


async def main() -> None:
    app = create_app(load_settings({}))  # which initialises the known labels: nothing else is called
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/metrics")
        assert response.status == 200, response.status
        sys.stdout.write(await response.text())


asyncio.run(main())
"""


@pytest.fixture(scope="module")
def exposition() -> str:
    proc = subprocess.run([sys.executable, "-c", SCRAPE], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _expected() -> list[tuple[str, dict[str, str]]]:
    """Every series initialise_labels must create, spelled out (not read back from the module)."""
    series: list[tuple[str, dict[str, str]]] = []
    outcomes = ("completed", "rejected", "upstream_error", "carrier_error", "timeout", "drained", "abandoned",
                "agent_ended", "transferred", "idle", "voicemail")
    for carrier in registry.CARRIERS:
        series += [("gateway_calls_total", {"carrier": carrier, "provider": "echo", "outcome": o, "agent": "default"})
                   for o in outcomes]
    series += [("gateway_call_cost_usd_total", {"agent": "default"})]
    series += [("gateway_agents_reloads_total", {"result": r}) for r in ("reloaded", "refused")]
    series += [("gateway_webhook_requests_total", {"result": r})
               for r in ("accepted", "forbidden", "bad_request", "busy")]
    series += [("gateway_stream_tokens_rejected_total", {"reason": r})
               for r in ("missing", "malformed", "bad_signature", "expired", "replayed", "no_start",
                         "bad_handshake_signature", "over_capacity")]
    series += [("gateway_upstream_connect_failures_total", {"provider": "echo"}),
               ("gateway_upstream_connect_retries_total", {"provider": "echo"})]
    series += [("gateway_frames_dropped_total", {"reason": r})
               for r in ("buffer_overflow", "stale_delta", "rate_limited")]
    series += [(name, {"direction": d}) for name in ("gateway_audio_frames_total", "gateway_audio_seconds_total")
               for d in ("inbound", "outbound")]
    series += [("gateway_fallbacks_total", {"result": r}) for r in ("redirected", "failed", "unconfigured")]
    series += [("gateway_send_stalls_total", {"side": s}) for s in ("carrier", "upstream")]
    series += [("gateway_upstream_reconnects_total", {"reason": r})
               for r in ("closed", "server_error", "session_expired", "stalled", "recycle")]
    series += [("gateway_realtime_tokens_total", {"kind": k}) for k in TOKEN_KINDS]
    series += [("gateway_transfers_total", {"result": r}) for r in ("transferred", "refused", "failed", "unavailable")]
    series += [("gateway_dtmf_keys_total", {"direction": d}) for d in ("inbound", "outbound")]
    series += [("gateway_idle_reprompts_total", {})]
    # No tools file: only the label for names no file declares.
    series += [("gateway_tool_calls_total", {"tool": "unknown", "outcome": o})
               for o in ("ok", "bad_arguments", "unknown_tool", "http_error", "timeout", "too_large", "failed",
                         "refused", "cancelled")]
    series += [("gateway_tool_duration_seconds_count", {"tool": "unknown"})]
    return series


def test_known_label_values_are_exposed_at_zero(exposition: str) -> None:
    samples = _samples(exposition)
    missing, nonzero = [], []
    for name, labels in _expected():
        key = (name, tuple(sorted(labels.items())))
        if key not in samples:
            missing.append(f"{name}{labels}")
        elif samples[key] != 0:
            nonzero.append(f"{name}{labels} = {samples[key]}")
    assert not missing, f"series not exposed before any call: {missing}"
    assert not nonzero, nonzero


def test_no_created_series(exposition: str) -> None:
    names = {name for name, _ in _samples(exposition)}
    assert names, "nothing parsed"
    assert not [n for n in names if n.endswith("_created")]
    assert "_created" not in exposition


def test_help_texts_say_what_is_measured(exposition: str) -> None:
    helps = {f.name: f.documentation for f in text_string_to_metric_families(exposition)}
    connect = helps["gateway_upstream_connect_seconds"]
    assert "session.updated" in connect and "socket is open" not in connect
    assert "abandoned" in helps["gateway_calls"]


def test_initialise_labels_is_idempotent_and_keeps_counts() -> None:
    counter = metrics.FALLBACKS.labels("unconfigured")
    metrics.initialise_labels(["twilio"], "echo")
    before = counter._value.get()
    counter.inc()
    metrics.initialise_labels(["twilio"], "echo")
    assert counter._value.get() == before + 1
    assert metrics.REGISTRY.get_sample_value("gateway_fallbacks_total", {"result": "unconfigured"}) == before + 1


def test_every_label_value_the_code_uses_is_initialised() -> None:
    """Label values spelled out in the gateway's code (a new token reason, outcome, fallback result...)
    are in initialise_labels' lists, so they are exposed at 0 too."""
    sources = "\n".join(p.read_text() for p in (REPO / "gateway").rglob("*.py") if "bench" not in p.parts)
    found = {
        "outcome": set(re.findall(r'(?:Hangup|\.end)\("([a-z_]+)"', sources)),
        "token reason": set(re.findall(r'(?:TokenRejected|TOKENS_REJECTED\.labels)\("([a-z_]+)"', sources)),
        "webhook result": set(re.findall(r'(?:WebhookRefused|WEBHOOKS\.labels)\("([a-z_]+)"', sources)),
        "fallback result": set(re.findall(r'fallback = "([a-z_]+)"', sources)),
    }
    known = {"outcome": metrics.CALL_OUTCOMES, "token reason": metrics.TOKEN_REJECT_REASONS,
             "webhook result": metrics.WEBHOOK_RESULTS, "fallback result": metrics.FALLBACK_RESULTS}
    for kind, values in found.items():
        assert values, f"no {kind} found in the code: the pattern is stale"
        assert values <= set(known[kind]), f"{kind}s not initialised: {sorted(values - set(known[kind]))}"


def test_tool_labels_are_the_files_names_and_unknown() -> None:
    metrics.initialise_tool_labels(["order_status", "end_call"])
    assert metrics.tool_label("order_status") == "order_status"
    assert metrics.tool_label("made_up_by_the_model") == "unknown"
    for tool in ("order_status", "end_call"):
        for outcome in metrics.TOOL_OUTCOMES:
            assert metrics.REGISTRY.get_sample_value("gateway_tool_calls_total",
                                                     {"tool": tool, "outcome": outcome}) is not None
