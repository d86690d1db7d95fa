"""Every setting of the gateway, read from the environment and validated once at start-up.

A bad value raises `ConfigError` naming the variable and what it accepts; the command line prints
that message and exits 2, never a traceback. Secrets are wrapped in `Secret` so that no repr, log
line or error message can print them. Each carrier reads its own settings (`carriers/<name>/`), asked
through the carrier registry, so they are validated here with the rest, at start-up.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from gateway.carriers import registry
from gateway.carriers.base import Fallback
from gateway.env import ConfigError, Env, Secret, check_url

__all__ = ["Agent", "ConfigError", "Dialect", "Fallback", "Provider", "Secret", "Settings", "TurnDetection",
           "Upstream", "load_settings"]

Dialect = Literal["ga", "beta"]
Provider = Literal["openai", "azure", "custom", "echo"]

OPENAI_REALTIME_URL = "wss://api.openai.com/v1/realtime"
DEFAULT_INSTRUCTIONS = (
    "You are a helpful, friendly voice assistant answering a phone call. "
    "Keep answers short and conversational."
)
DEFAULT_FALLBACK_MESSAGE = "Sorry, our assistant is not available right now. Please try again later."
GA_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")


@dataclass(frozen=True)
class TurnDetection:
    mode: Literal["server_vad", "semantic_vad", "none"] = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    create_response: bool = True
    interrupt_response: bool = True


@dataclass(frozen=True)
class Agent:
    instructions: str = DEFAULT_INSTRUCTIONS
    voice: str = "alloy"
    greeting: str | None = None
    turn_detection: TurnDetection = field(default_factory=TurnDetection)
    transcription_model: str | None = None
    transcription_language: str | None = None
    noise_reduction: Literal["near_field", "far_field"] | None = None


@dataclass(frozen=True)
class Upstream:
    provider: Provider
    url: str  # full WebSocket URL, query included
    dialect: Dialect
    headers: tuple[tuple[str, Secret | str], ...] = ()
    model: str | None = None
    connect_timeout_s: float = 10.0  # per handshake attempt
    connect_retries: int = 2  # attempts after the first; a 401/403 answer is never retried
    retry_backoff_s: float = 0.5  # before retry n: backoff * 2**(n-1)

    def describe(self) -> str:
        """The URL without its query string: safe to log (Azure preview keys may sit in a query)."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8080
    public_url: str | None = None
    metrics_port: int | None = None
    log_level: str = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    drain_timeout_s: float = 600.0
    max_concurrent_calls: int = 0
    max_carrier_message_bytes: int = 64 * 1024
    max_call_duration_s: float = 14400.0
    max_frames_per_second: int = 150  # per call; 0 = unlimited
    max_reconnects: int = 3  # upstream drops survived per call
    session_max_s: float = 3300.0  # recycle the upstream session between turns after this; 0 = never
    send_stall_timeout_s: float = 10.0  # a socket that does not drain for this long is given up
    call_reports_dir: Path | None = None
    call_report_url: str | None = None
    call_report_mask_numbers: bool = False
    upstream: Upstream = field(
        default_factory=lambda: Upstream(provider="echo", url="ws://127.0.0.1:0/v1/realtime", dialect="ga")
    )
    agent: Agent = field(default_factory=Agent)
    stream_token_secret: Secret = field(default_factory=lambda: Secret(secrets.token_urlsafe(32)))
    stream_token_secret_generated: bool = True
    stream_token_ttl_s: float = 60.0
    admin_token: Secret | None = None
    fallback: Fallback = field(default_factory=lambda: Fallback(DEFAULT_FALLBACK_MESSAGE))
    carriers: Mapping[str, Any] = field(default_factory=lambda: registry.load_settings(Env({})))  # by carrier name

    @property
    def offline(self) -> bool:
        return self.upstream.provider == "echo"

    def secrets(self) -> list[str]:
        """Every secret value, for the log redaction (bearer headers also without their scheme)."""
        values = [self.stream_token_secret, self.admin_token, *(v for _, v in self.upstream.headers),
                  *registry.secrets(self.carriers)]
        out = []
        for value in values:
            if isinstance(value, Secret) and value:
                out.append(value.reveal())
                out.append(value.reveal().removeprefix("Bearer "))
        return out


# --- parsing helpers -------------------------------------------------------------------------------


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _ws_scheme(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


def _infer_dialect(url: str) -> Dialect:
    """Azure's preview route (/openai/realtime?api-version=...) speaks beta; everything else GA."""
    parts = urlsplit(url)
    if parts.path.rstrip("/").endswith("/openai/realtime") or "api-version=" in parts.query:
        return "beta"
    return "ga"


def _upstream(env: Env) -> Upstream:
    provider = env.choice("REALTIME_PROVIDER", "auto", ("auto", "openai", "azure", "custom", "echo"))
    if provider == "auto":
        if env.str("REALTIME_URL"):
            provider = "custom"
        elif env.str("AZURE_OPENAI_ENDPOINT"):
            provider = "azure"
        elif env.str("OPENAI_API_KEY"):
            provider = "openai"
        else:
            provider = "echo"
    dialect_setting = env.choice("REALTIME_DIALECT", "auto", ("auto", "ga", "beta"))
    timeout = env.float("UPSTREAM_CONNECT_TIMEOUT_S", 10.0, 0.5, 120.0)
    retries = env.int("UPSTREAM_CONNECT_RETRIES", 2, 0, 10) or 0
    backoff = env.float("UPSTREAM_RETRY_BACKOFF_S", 0.5, 0.0, 30.0)
    model = env.str("OPENAI_REALTIME_MODEL", "gpt-realtime")
    headers: list[tuple[str, Secret | str]] = []

    if provider == "echo":
        url = "ws://127.0.0.1:0/v1/realtime"  # the real port is known once the echo line listens
    elif provider == "openai":
        key = env.secret("OPENAI_API_KEY")
        if not key:
            raise ConfigError("OPENAI_API_KEY is required when REALTIME_PROVIDER=openai")
        base = check_url("OPENAI_REALTIME_URL", env.str("OPENAI_REALTIME_URL", OPENAI_REALTIME_URL),
                          ("wss", "ws"))
        url = _with_query(base, model=model)
        headers.append(("Authorization", Secret(f"Bearer {key.reveal()}")))
    elif provider == "azure":
        endpoint = check_url("AZURE_OPENAI_ENDPOINT", env.str("AZURE_OPENAI_ENDPOINT", ""),
                              ("https", "wss", "http", "ws"))
        key = env.secret("AZURE_OPENAI_API_KEY")
        if not key:
            raise ConfigError("AZURE_OPENAI_API_KEY is required when AZURE_OPENAI_ENDPOINT is set")
        deployment = env.str("AZURE_OPENAI_DEPLOYMENT")
        if not deployment:
            raise ConfigError("AZURE_OPENAI_DEPLOYMENT is required with AZURE_OPENAI_ENDPOINT "
                              "(the name of your realtime deployment)")
        base = _ws_scheme(endpoint).rstrip("/")
        api_version = env.str("AZURE_OPENAI_API_VERSION")
        if api_version:  # the deprecated preview route, beta shapes
            url = _with_query(base + "/openai/realtime", **{"api-version": api_version, "deployment": deployment})
        else:
            url = _with_query(base + "/openai/v1/realtime", model=deployment)
        model = deployment
        headers.append(("api-key", key))
    else:  # custom
        url = check_url("REALTIME_URL", env.str("REALTIME_URL", ""), ("wss", "ws"))
        key = env.secret("REALTIME_API_KEY")
        auth = env.choice("REALTIME_AUTH", "bearer", ("bearer", "api-key"))
        if key:
            if auth == "bearer":
                headers.append(("Authorization", Secret(f"Bearer {key.reveal()}")))
            else:
                headers.append(("api-key", key))
        model = env.str("OPENAI_REALTIME_MODEL")

    dialect: Dialect = _infer_dialect(url) if dialect_setting == "auto" else dialect_setting  # type: ignore[assignment]
    if provider == "openai" and dialect == "beta":
        raise ConfigError("REALTIME_DIALECT=beta cannot be used with OpenAI's endpoint: it speaks only GA "
                          "since 2026-05-12 (use ga, or a custom REALTIME_URL)")
    if dialect == "beta" and provider in ("openai", "custom"):
        headers.append(("OpenAI-Beta", "realtime=v1"))
    return Upstream(provider=provider, url=url, dialect=dialect, headers=tuple(headers), model=model,
                    connect_timeout_s=timeout, connect_retries=retries, retry_backoff_s=backoff)


def _agent(env: Env) -> Agent:
    instructions = env.str("AGENT_INSTRUCTIONS")
    path = env.str("AGENT_INSTRUCTIONS_FILE")
    if instructions and path:
        raise ConfigError("set AGENT_INSTRUCTIONS or AGENT_INSTRUCTIONS_FILE, not both")
    if path:
        try:
            instructions = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"AGENT_INSTRUCTIONS_FILE cannot be read: {path} ({exc.strerror})") from None
        if not instructions:
            raise ConfigError(f"AGENT_INSTRUCTIONS_FILE is empty: {path}")
    voice = env.str("AGENT_VOICE", "alloy")
    assert voice is not None
    if not voice.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"AGENT_VOICE must be a voice name such as {', '.join(GA_VOICES)} (got {voice!r})")
    mode = env.choice("TURN_DETECTION", "server_vad", ("server_vad", "semantic_vad", "none"))
    turn = TurnDetection(
        mode=mode,  # type: ignore[arg-type]
        threshold=env.float("VAD_THRESHOLD", 0.5, 0.0, 1.0),
        prefix_padding_ms=env.int("VAD_PREFIX_PADDING_MS", 300, 0, 5000) or 0,
        silence_duration_ms=env.int("VAD_SILENCE_DURATION_MS", 500, 0, 10000) or 0,
        eagerness=env.choice("VAD_EAGERNESS", "auto", ("low", "medium", "high", "auto")),  # type: ignore[arg-type]
        create_response=env.bool("VAD_CREATE_RESPONSE", True),
        interrupt_response=env.bool("VAD_INTERRUPT_RESPONSE", True),
    )
    noise = env.choice("NOISE_REDUCTION", "off", ("off", "near_field", "far_field"))
    return Agent(
        instructions=instructions or DEFAULT_INSTRUCTIONS,
        voice=voice,
        greeting=env.str("AGENT_GREETING"),
        turn_detection=turn,
        transcription_model=env.str("INPUT_TRANSCRIPTION_MODEL"),
        transcription_language=env.str("INPUT_TRANSCRIPTION_LANGUAGE"),
        noise_reduction=None if noise == "off" else noise,  # type: ignore[arg-type]
    )


def _reports_dir(env: Env) -> Path | None:
    raw = env.str("CALL_REPORTS_DIR")
    if not raw:
        return None
    path = Path(raw)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"CALL_REPORTS_DIR cannot be created: {raw} ({exc.strerror})") from None
    if not os.access(path, os.W_OK):
        raise ConfigError(f"CALL_REPORTS_DIR is not writable: {raw}")
    return path


_PHONE_NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$")


def _fallback(env: Env) -> Fallback:
    number = env.str("FALLBACK_NUMBER")
    if number and not _PHONE_NUMBER.match(number):
        raise ConfigError(f"FALLBACK_NUMBER must be a phone number in E.164 form, e.g. +14155550100 (got {number!r})")
    message = env.str("FALLBACK_MESSAGE", DEFAULT_FALLBACK_MESSAGE) or DEFAULT_FALLBACK_MESSAGE
    if len(message) > 1000:
        raise ConfigError("FALLBACK_MESSAGE must be at most 1000 characters long")
    return Fallback(message=message, number=number)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raises ConfigError with a message fit for a user."""
    env = Env(os.environ if environ is None else environ)
    public_url = env.str("PUBLIC_URL")
    if public_url:
        public_url = check_url("PUBLIC_URL", public_url, ("https", "http")).rstrip("/")
    port = env.int("PORT", 8080, 1, 65535)
    metrics_port = env.int("METRICS_PORT", None, 1, 65535)
    if metrics_port is not None and metrics_port == port:
        raise ConfigError(f"METRICS_PORT must differ from PORT (both {port})")
    token_secret = env.secret("STREAM_TOKEN_SECRET")
    if token_secret and len(token_secret.reveal()) < 16:
        raise ConfigError("STREAM_TOKEN_SECRET must be at least 16 characters long")
    return Settings(
        host=env.str("HOST", "0.0.0.0") or "0.0.0.0",
        port=port or 8080,
        public_url=public_url,
        metrics_port=metrics_port,
        log_level=env.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
        log_format=env.choice("LOG_FORMAT", "auto", ("auto", "json", "console")),  # type: ignore[arg-type]
        drain_timeout_s=env.float("DRAIN_TIMEOUT_S", 600.0, 0.0, 86400.0),
        max_concurrent_calls=env.int("MAX_CONCURRENT_CALLS", 0, 0, 100000) or 0,
        max_carrier_message_bytes=env.int("MAX_CARRIER_MESSAGE_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024)
        or 64 * 1024,
        max_call_duration_s=env.float("MAX_CALL_DURATION_S", 14400.0, 10.0, 86400.0),
        max_frames_per_second=env.int("MAX_FRAMES_PER_SECOND", 150, 0, 100000) or 0,
        max_reconnects=env.int("UPSTREAM_MAX_RECONNECTS", 3, 0, 100) or 0,
        session_max_s=_session_max(env),
        send_stall_timeout_s=env.float("SEND_STALL_TIMEOUT_S", 10.0, 1.0, 300.0),
        call_reports_dir=_reports_dir(env),
        call_report_url=check_url("CALL_REPORT_URL", url, ("https", "http")) if (url := env.str("CALL_REPORT_URL"))
        else None,
        call_report_mask_numbers=env.bool("CALL_REPORT_MASK_NUMBERS", False),
        upstream=_upstream(env),
        agent=_agent(env),
        stream_token_secret=token_secret or Secret(secrets.token_urlsafe(32)),
        stream_token_secret_generated=token_secret is None,
        stream_token_ttl_s=env.float("STREAM_TOKEN_TTL_S", 60.0, 1.0, 3600.0),
        admin_token=env.secret("ADMIN_TOKEN"),
        fallback=_fallback(env),
        carriers=registry.load_settings(env),
    )


def _session_max(env: Env) -> float:
    value = env.float("SESSION_MAX_S", 3300.0, 0.0, 86400.0)
    if 0 < value < 1:
        raise ConfigError(f"SESSION_MAX_S must be 0 (never recycle) or at least 1 second (got {value:g})")
    return value
