"""The building blocks of settings, shared by `config` and every carrier package: `Secret`,
`ConfigError`, a reader for environment values that names the variable in every error (and one
that collects every error of a load, `CollectingEnv`), and the loader of the `.env` file.

A leaf module (it imports nothing of the gateway), so carriers can read their own settings without
importing `config`, which imports them through the registry.
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable and what it accepts.

    One error may carry several (`errors`, one message each): the message is then one per line, so
    that everything wrong is reported at once.
    """

    def __init__(self, message: str, *, errors: Iterable[str] = ()) -> None:
        self.errors: tuple[str, ...] = tuple(errors) or (message,)
        super().__init__(message)

    @classmethod
    def of(cls, messages: Iterable[str]) -> ConfigError:
        """One error listing every message (one per line)."""
        errors = tuple(messages)
        return cls("\n".join(errors), errors=errors)

    def describe(self) -> str:
        """The text for a person: `configuration error: ...`, or a count and one error per line."""
        if len(self.errors) == 1:
            return f"configuration error: {self.errors[0]}"
        return f"configuration errors ({len(self.errors)}, fix them all):\n" + "\n".join(
            f"  - {message}" for message in self.errors)


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


T = TypeVar("T")


class CollectingEnv(Env):
    """An `Env` whose typed reads record a bad value and return the default, so that one load reports
    every error. `invalid` names the variables that failed, for checks that depend on them."""

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__(env)
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.invalid: set[str] = set()

    def error(self, message: str) -> None:
        self.errors.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def check(self, read: Callable[[], T], fallback: T, name: str = "") -> T:
        try:
            return read()
        except ConfigError as exc:
            self.errors.extend(exc.errors)
            if name:
                self.invalid.add(name)
            return fallback

    def int(self, name: str, default: int | None, lo: int, hi: int) -> int | None:
        return self.check(lambda: Env.int(self, name, default, lo, hi), default, name)

    def float(self, name: str, default: float, lo: float, hi: float) -> float:
        return self.check(lambda: Env.float(self, name, default, lo, hi), default, name)

    def bool(self, name: str, default: bool) -> bool:
        return self.check(lambda: Env.bool(self, name, default), default, name)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        return self.check(lambda: Env.choice(self, name, default, choices), default, name)


def check_url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    """`value` if it is an absolute URL with one of `schemes`, else a ConfigError naming `name`."""
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{name} must be an absolute {'/'.join(schemes)} URL (got {value!r})")
    return value


# --- the .env file ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvFile:
    """What `load_env_file` did: the names it set, and those the environment already had (kept)."""

    path: str
    loaded: tuple[str, ...]
    kept: tuple[str, ...]


def load_env_file(path: str | os.PathLike[str], *, required: bool = False,
                  environ: MutableMapping[str, str] | None = None) -> EnvFile | None:
    """Set the variables of a `.env` file that the environment does not already have.

    The syntax is the one compose's `env_file` reads, parsed by python-dotenv: `NAME=value` lines,
    blank lines and `#` comments, an optional `export `, values in single or double quotes (which
    may hold spaces and `#`), unquoted values up to an inline ` #` comment, `${OTHER}` expanded.
    A variable already in the environment wins over the file, as it does for compose.

    None when the file does not exist and is not `required`. A line that cannot be parsed is a
    ConfigError naming the file and the line (every such line at once), never the line's text: values
    may be secrets. `environ` (default `os.environ`) is the environment set; `${OTHER}` references are
    resolved from the file and the process environment, as python-dotenv does.
    """
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    environ = os.environ if environ is None else environ
    name = os.fspath(path)
    try:
        raw = Path(name).read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{name}: no such file (--env-file)") from None
        return None
    except OSError as exc:
        raise ConfigError(f"{name} cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{name} line {line}: not UTF-8 text") from None
    bad = [_binding_line(b.original.string, b.original.line)
           for b in parse_stream(io.StringIO(text)) if b.error]
    if bad:
        raise ConfigError.of(
            f"{name} line {line}: cannot be parsed (expected NAME=value, and any quote closed; the line is "
            "not shown, it may hold a secret)" for line in bad)
    loaded, kept = [], []
    for key, value in dotenv_values(stream=io.StringIO(text), interpolate=True).items():
        if value is None:  # a bare NAME line: nothing to set
            continue
        if key in environ:
            kept.append(key)
        else:
            environ[key] = value
            loaded.append(key)
    return EnvFile(path=name, loaded=tuple(loaded), kept=tuple(kept))


def _binding_line(original: str, line: int) -> int:
    """The line a binding's text starts on: python-dotenv counts from the blank lines before it."""
    stripped = original.lstrip()
    leading = original[: len(original) - len(stripped)]
    return line + leading.count("\n") + leading.count("\r") - leading.count("\r\n")
