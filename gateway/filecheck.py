"""Checking a settings file (the tools file, the agents file): every problem collected, each prefixed with
the file and where in it (`agents.sales.voice: ...`), so one round of fixes is enough. Imports nothing of
the gateway: the loaders build on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def kind(value: Any) -> str:
    """What a value is, in a user's words."""
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


class FileCheck:
    """Collects every problem of one file. `label` names it as the user set it (TOOLS_FILE, AGENTS_FILE)."""

    def __init__(self, label: str, source: str) -> None:
        self.label = label
        self.source = source
        self.errors: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{self.label} {self.source}: {where}: {message}")

    def mapping(self, value: Any, where: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any] | None:
        """`value` when it is a mapping of known fields only (`allowed`; None: any)."""
        if not isinstance(value, dict):
            self.error(where, f"must be a mapping (got {kind(value)})")
            return None
        unknown = [str(k) for k in value if allowed is not None and k not in allowed]
        if unknown:
            self.error(where, f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                       f"(known: {', '.join(allowed or ())})")
        return value

    def text(self, entry: Mapping[str, Any], key: str, where: str, *, required: bool = False,
             default: str | None = None, limit: int | None = None) -> str | None:
        """A non-empty string (stripped), at most `limit` characters; `default` when absent or wrong."""
        value = entry.get(key)
        if value is None:
            if required:
                self.error(f"{where}.{key}", "is required")
            return default
        if not isinstance(value, str) or not value.strip():
            self.error(f"{where}.{key}", f"must be a non-empty string (got {kind(value)})")
            return default
        if limit is not None and len(value) > limit:
            self.error(f"{where}.{key}", f"must be at most {limit} characters long (got {len(value)})")
            return default
        return value.strip()

    def number(self, entry: Mapping[str, Any], key: str, where: str, default: float, lo: float, hi: float) -> float:
        value = entry.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
            self.error(f"{where}.{key}", f"must be a number from {lo:g} to {hi:g} (got {value!r})")
            return default
        return float(value)

    def flag(self, entry: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
        value = entry.get(key, default)
        if not isinstance(value, bool):
            self.error(f"{where}.{key}", f"must be true or false (got {value!r})")
            return default
        return value

    def choice(self, entry: Mapping[str, Any], key: str, where: str, default: str, allowed: tuple[str, ...]) -> str:
        value = entry.get(key, default)
        if value not in allowed:
            self.error(f"{where}.{key}", f"must be one of {', '.join(allowed)} (got {value!r})")
            return default
        return str(value)
