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
