"""The building blocks of settings, shared by `config` and every carrier package: `Secret`,
`ConfigError` and a reader for environment values that names the variable in every error.

A leaf module (it imports nothing of the gateway), so carriers can read their own settings without
importing `config`, which imports them through the registry.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable and what it accepts."""


class Secret:
    """A secret value that prints as '***'. Call `reveal()` at the one place that needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and secrets.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Env:
    """Typed reads of environment values; every error names the variable and what it accepts."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self._env.get(name)
        if value is None or value.strip() == "":
            return default
        return value.strip()

    def secret(self, name: str) -> Secret | None:
        value = self.str(name)
        return Secret(value) if value else None

    def int(self, name: str, default: int | None, lo: int, hi: int) -> int | None:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer from {lo} to {hi} (got {raw!r})") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{name} must be an integer from {lo} to {hi} (got {value})")
        return value

    def float(self, name: str, default: float, lo: float, hi: float) -> float:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number from {lo:g} to {hi:g} (got {raw!r})") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{name} must be a number from {lo:g} to {hi:g} (got {raw})")
        return value

    def bool(self, name: str, default: bool) -> bool:
        raw = self.str(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigError(f"{name} must be true or false (got {raw!r})")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self.str(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {raw!r})")
        return raw.lower()


def check_url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    """`value` if it is an absolute URL with one of `schemes`, else a ConfigError naming `name`."""
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{name} must be an absolute {'/'.join(schemes)} URL (got {value!r})")
    return value
