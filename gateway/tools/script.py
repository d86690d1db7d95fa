"""The offline echo line's tool script (ECHO_TOOL_SCRIPT, YAML or JSON): on the caller's Nth turn of a
session, answer with a function call (and/or a scripted line) instead of echoing, so that tools can be
seen end to end with no API key.

    turns:
      1:                               # the caller's first utterance
        call: order_status             # the function to call
        arguments: {order_id: "4711"}  # a mapping (sent as JSON), or a string sent as is (even bad JSON)
      2:
        say: Thanks for calling, goodbye!   # spoken first (a tone as long as the line), with it as transcript
        call: end_call
        call_first: false              # true: the function call comes before the spoken line

The echo line speaks a function's output back when the gateway asks for the response that follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from gateway.env import ConfigError


@dataclass(frozen=True)
class ScriptedTurn:
    say: str | None = None
    call: str | None = None
    arguments: str = "{}"  # the JSON text the function call carries
    call_first: bool = False


@dataclass(frozen=True)
class ToolScript:
    turns: dict[int, ScriptedTurn]

    def calls(self) -> set[str]:
        return {t.call for t in self.turns.values() if t.call}


def parse_script(data: Any, source: str = "(inline)") -> ToolScript:
    """A script from its parsed file; one ConfigError lists every problem."""
    errors: list[str] = []

    def error(where: str, message: str) -> None:
        errors.append(f"ECHO_TOOL_SCRIPT {source}: {where}: {message}")

    turns = data.get("turns") if isinstance(data, dict) else None
    if not isinstance(turns, dict) or not turns:
        raise ConfigError(f"ECHO_TOOL_SCRIPT {source}: must hold `turns:`, a mapping of turn numbers (from 1) "
                          "to what the echo line does on that turn")
    out: dict[int, ScriptedTurn] = {}
    for key, entry in turns.items():
        where = f"turns.{key}"
        number = key if isinstance(key, int) and not isinstance(key, bool) else None
        if isinstance(key, str) and key.isdigit():
            number = int(key)
        if number is None or number < 1:
            error(where, "a turn is a number from 1")
            continue
        if not isinstance(entry, dict):
            error(where, "must be a mapping with say, call, arguments, call_first")
            continue
        unknown = set(entry) - {"say", "call", "arguments", "call_first"}
        if unknown:
            error(where, f"unknown fields {', '.join(sorted(map(str, unknown)))} (known: say, call, arguments, "
                  "call_first)")
        say, call, arguments = entry.get("say"), entry.get("call"), entry.get("arguments", {})
        if say is not None and not (isinstance(say, str) and say):
            error(f"{where}.say", "must be a non-empty string")
        if call is not None and not (isinstance(call, str) and call):
            error(f"{where}.call", "must be a function name")
        if say is None and call is None:
            error(where, "needs say, call or both")
        if isinstance(arguments, dict):
            arguments = orjson.dumps(arguments).decode()
        elif not isinstance(arguments, str):
            error(f"{where}.arguments", "must be a mapping, or a string sent as is")
            arguments = "{}"
        call_first = entry.get("call_first", False)
        if not isinstance(call_first, bool):
            error(f"{where}.call_first", "must be true or false")
        out[number] = ScriptedTurn(say, call, arguments, call_first is True)
    if errors:
        raise ConfigError.of(errors)
    return ToolScript(out)


def load_script(path: str | None) -> ToolScript | None:
    """Read ECHO_TOOL_SCRIPT (JSON when it ends in .json, else YAML); None when not set."""
    if not path:
        return None
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"ECHO_TOOL_SCRIPT cannot be read: {path} ({exc.strerror})") from None
    try:
        data = orjson.loads(raw) if path.endswith(".json") else yaml.safe_load(raw)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"ECHO_TOOL_SCRIPT {path}: not valid {'JSON' if path.endswith('.json') else 'YAML'} "
                          f"({getattr(exc, 'problem', None) or exc})") from None
    return parse_script(data, path)
