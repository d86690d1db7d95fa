"""Call summary helpers: masking, percentiles, truncations marked in the transcript."""

from gateway.core.stats import CallStats
from gateway.observability.reports import mask_number, percentiles, transcript_with_truncations


def test_mask_number_keeps_the_last_four_digits():
    assert mask_number("+14155550123") == "+•••••••0123"
    assert mask_number("") == "" and mask_number(None) is None


def test_percentiles():
    assert percentiles([]) is None
    assert percentiles([300.0, 100.0, 200.0]) == {"p50": 200.0, "p95": 300.0, "max": 300.0, "count": 3}


def test_transcript_marks_interrupted_items():
    stats = CallStats()
    stats.transcript = [{"role": "caller", "text": "hi", "item_id": "u1"},
                        {"role": "assistant", "text": "hello there, how", "item_id": "a1"}]
    stats.truncations = [("a1", 740, 1500.0)]
    lines = transcript_with_truncations(stats)
    assert "interrupted" not in lines[0]
    assert lines[1]["interrupted"] is True and lines[1]["heard_ms"] == 740


def test_summary_lists_tool_calls_and_transfers_and_the_exporter_counts_them():
    import datetime as dt

    from gateway.observability import metrics
    from gateway.observability.reports import call_summary

    metrics.initialise_tool_labels(["order_status", "transfer_call"])
    stats = CallStats()
    stats.tool_calls = [{"name": "order_status", "call_id": "c1", "outcome": "ok", "duration_ms": 120,
                         "arguments": '{"order_id":"4711"}'},
                        {"name": "card_check", "call_id": "c2", "outcome": "unknown_tool", "duration_ms": 0}]
    stats.tool_results = [("order_status", "ok", 120.0), ("card_check", "unknown_tool", 0.0)]
    stats.transfers = ["refused"]
    summary = call_summary(call_sid="CA1", stream_sid="MZ1", carrier="twilio", provider="echo", parameters={},
                           started_at=dt.datetime.now(dt.UTC), duration_s=3.0, outcome="agent_ended",
                           reason="the agent ended the call", stats=stats, carrier_errors=0, mask_numbers=False)
    assert summary["tool_calls"] == stats.tool_calls and summary["transfers"] == ["refused"]
    assert summary["outcome"] == "agent_ended"

    def value(name, labels):
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    ok, unknown = {"tool": "order_status", "outcome": "ok"}, {"tool": "unknown", "outcome": "unknown_tool"}
    before = (value("gateway_tool_calls_total", ok), value("gateway_tool_calls_total", unknown),
              value("gateway_transfers_total", {"result": "refused"}),
              value("gateway_tool_duration_seconds_count", {"tool": "order_status"}))
    exporter = metrics.CallExporter(stats)
    exporter.flush()
    exporter.flush()  # only what is new is added
    after = (value("gateway_tool_calls_total", ok), value("gateway_tool_calls_total", unknown),
             value("gateway_transfers_total", {"result": "refused"}),
             value("gateway_tool_duration_seconds_count", {"tool": "order_status"}))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1]
    assert metrics.REGISTRY.get_sample_value("gateway_tool_calls_total", {"tool": "card_check", "outcome": "ok"}) \
        is None  # a name the file does not declare never becomes a label
