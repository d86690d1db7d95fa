"""What a call cost: tokens by kind, cached input moved to its own rate."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.agents.prices import Price, PriceTable, load_prices
from gateway.config import ConfigError

REALTIME = Price(text_input=4, text_input_cached=0.4, text_output=16, audio_input=32, audio_input_cached=0.4,
                 audio_output=64)


def test_each_kind_at_its_rate_with_the_cached_parts_moved_to_the_cached_rates():
    tokens = {"input_text": 1000, "input_audio": 5000, "input_cached": 3000, "input_cached_audio": 2000,
              "output_text": 200, "output_audio": 4000}
    # text: 1000 in, of which 1000 cached; audio: 5000 in, of which 2000 cached
    expected = (0 * 4 + 1000 * 0.4 + 200 * 16 + 3000 * 32 + 2000 * 0.4 + 4000 * 64) / 1_000_000
    assert REALTIME.cost(tokens) == pytest.approx(expected)
    assert REALTIME.cost({}) == 0.0


def test_a_cached_count_larger_than_its_kind_never_goes_negative():
    assert REALTIME.cost({"input_text": 10, "input_cached": 50}) == pytest.approx(50 * 0.4 / 1_000_000)


def test_the_table_prices_named_models_only():
    table = PriceTable({"gpt-realtime": REALTIME})
    assert table.cost("gpt-realtime", {"output_audio": 1_000_000}) == 64.0
    assert table.cost("other", {"output_audio": 1}) is None
    assert table.cost(None, {"output_audio": 1}) is None
    assert not PriceTable({})


def test_the_file_is_checked(tmp_path: Path):
    assert not load_prices(None)
    good = tmp_path / "p.yaml"
    good.write_text("gpt-realtime: {audio_output: 64, text_input: 4}\n")
    assert load_prices(str(good)).prices["gpt-realtime"] == Price(audio_output=64, text_input=4)
    bad = tmp_path / "bad.yaml"
    bad.write_text("m1: {audio_out: 1, text_input: -2}\nm2: 5\n")
    with pytest.raises(ConfigError) as exc:
        load_prices(str(bad))
    lines = str(exc.value).splitlines()
    assert any("m1.audio_out: unknown token kind" in e for e in lines)
    assert any("m1.text_input: must be USD per million tokens" in e for e in lines)
    assert any("m2: must map token kinds" in e for e in lines)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_prices(str(tmp_path / "missing.yaml"))


def test_the_example_file_loads():
    table = load_prices("deploy/prices.example.yaml")
    assert {"gpt-realtime", "gpt-realtime-mini"} <= set(table.prices)
