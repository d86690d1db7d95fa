"""What a call cost: the Realtime tokens it used (by kind, from `response.done` usage) times a price table.

PRICES_FILE (YAML or JSON) maps a model name — the name the call's session runs on: an agent's `model`,
else OPENAI_REALTIME_MODEL, or the Azure deployment name — to USD per million tokens:

    gpt-realtime:
      text_input: 4.00
      text_input_cached: 0.40
      text_output: 16.00
      audio_input: 32.00
      audio_input_cached: 0.40
      audio_output: 64.00

Cached input is billed at its own rate instead of the full one: OpenAI's usage counts cached tokens inside
the input tokens and breaks them down by text and audio, so each part is moved from the full rate to the
cached one. A model the table does not name has no cost (None, and a start-up warning for an agent's model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from gateway.env import ConfigError

PRICE_KINDS = ("text_input", "text_input_cached", "text_output", "audio_input", "audio_input_cached", "audio_output")
MAX_PRICE = 10_000.0  # USD per million tokens: anything above is a typo


@dataclass(frozen=True)
class Price:
    """USD per million tokens of each kind."""

    text_input: float = 0.0
    text_input_cached: float = 0.0
    text_output: float = 0.0
    audio_input: float = 0.0
    audio_input_cached: float = 0.0
    audio_output: float = 0.0

    def cost(self, tokens: Mapping[str, int]) -> float:
        """USD for `tokens` (core.stats.TOKEN_KINDS counts)."""
        cached = tokens.get("input_cached", 0)
        cached_audio = min(tokens.get("input_cached_audio", 0), cached)
        cached_text = cached - cached_audio
        text_in = max(0, tokens.get("input_text", 0) - cached_text)
        audio_in = max(0, tokens.get("input_audio", 0) - cached_audio)
        total = (text_in * self.text_input + cached_text * self.text_input_cached
                 + tokens.get("output_text", 0) * self.text_output
                 + audio_in * self.audio_input + cached_audio * self.audio_input_cached
                 + tokens.get("output_audio", 0) * self.audio_output)
        return total / 1_000_000


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, Price]

    def __bool__(self) -> bool:
        return bool(self.prices)

    def cost(self, model: str | None, tokens: Mapping[str, int]) -> float | None:
        price = self.prices.get(model) if model else None
        return None if price is None else price.cost(tokens)


def load_prices(path: str | None) -> PriceTable:
    """The table of PRICES_FILE (empty when unset); ConfigError listing every problem."""
    if not path:
        return PriceTable({})
    file = Path(path)
    try:
        raw = file.read_bytes()
        data: Any = orjson.loads(raw) if file.suffix.lower() == ".json" else yaml.safe_load(raw)
    except OSError as exc:
        raise ConfigError(f"PRICES_FILE cannot be read: {path} ({exc.strerror})") from None
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"PRICES_FILE {path} cannot be parsed: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"PRICES_FILE {path}: must map model names to prices (see deploy/prices.example.yaml)")
    errors: list[str] = []
    prices: dict[str, Price] = {}
    for model, entry in data.items():
        if not isinstance(entry, dict):
            errors.append(f"PRICES_FILE {path}: {model}: must map token kinds ({', '.join(PRICE_KINDS)}) to USD "
                          "per million tokens")
            continue
        values: dict[str, float] = {}
        for kind, value in entry.items():
            if kind not in PRICE_KINDS:
                errors.append(f"PRICES_FILE {path}: {model}.{kind}: unknown token kind "
                              f"(known: {', '.join(PRICE_KINDS)})")
            elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_PRICE:
                errors.append(f"PRICES_FILE {path}: {model}.{kind}: must be USD per million tokens, 0 to "
                              f"{MAX_PRICE:g} (got {value!r})")
            else:
                values[kind] = float(value)
        prices[str(model)] = Price(**values)
    if errors:
        raise ConfigError.of(errors)
    return PriceTable(prices)
