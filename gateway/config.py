"""Every setting of the gateway, read from the environment and validated once at start-up.

A bad value is a `ConfigError` naming the variable and what it accepts; every bad value of the
environment is reported at once (one per line), so that one round of fixes is enough. The command
line prints the message and exits 2, never a traceback. What is valid but worth a word (a voice
outside OpenAI's list for a custom server, a key that goes unused) is returned in
`Settings.warnings` for the start-up log. Secrets are wrapped in `Secret` so that no repr, log line
or error message can print them. Each carrier reads its own settings (`carriers/<name>/`), asked
through the carrier registry, so they are validated here with the rest, at start-up.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit

from gateway.agent_settings import (
    DEFAULT_INSTRUCTIONS,
    GA_VOICES,
    Agent,
    StoredPrompt,
    TurnDetection,
    check_keypad,
    read_idle,
    read_instructions,
)
from gateway.agents.prices import PriceTable
from gateway.agents.profile import AgentBook
from gateway.agents.settings import read_agents
from gateway.carriers import registry
from gateway.carriers.base import Fallback
from gateway.env import CollectingEnv, ConfigError, Env, Secret, check_url
from gateway.observability import signing
from gateway.observability.reports import reports_dir
from gateway.outbound import settings as outbound_settings
from gateway.realtime import pool_settings
from gateway.recording import settings as recording_settings
from gateway.sim import echo_settings
from gateway.tools.loader import load_tools_file
from gateway.tools.script import ToolScript, load_script
from gateway.tools.spec import ToolsSpec

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "Agent",
    "ConfigError",
    "Dialect",
    "Fallback",
    "Provider",
    "Secret",
    "Settings",
    "StoredPrompt",
    "TurnDetection",
    "Upstream",
    "load_settings",
]

Dialect = Literal["ga", "beta"]
Provider = Literal["openai", "azure", "custom", "echo"]
UpstreamAuth = Literal["bearer", "api-key", "entra", "none"]

OPENAI_REALTIME_URL = "wss://api.openai.com/v1/realtime"
AZURE_ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
DEFAULT_FALLBACK_MESSAGE = "Sorry, our assistant is not available right now. Please try again later."


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
    auth: UpstreamAuth = "none"  # how the upstream is authenticated, for logs and error hints
    # Set: a Microsoft Entra ID token for this scope is sent as `Authorization: Bearer` at connect time,
    # from the process-wide token provider (realtime/entra.py), instead of a static header.
    entra_scope: str | None = None

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
    upstream_ready_timeout_s: float = 5.0  # the first session must answer this soon after the stream starts
    http_idle_timeout_s: float = 15.0  # an HTTP connection with no complete request for this long is closed
    session_max_s: float = 3300.0  # recycle the upstream session between turns after this; 0 = never
    send_stall_timeout_s: float = 10.0  # a socket that does not drain for this long is given up
    call_reports_dir: Path | None = None
    call_report_url: str | None = None
    call_report_mask_numbers: bool = False
    call_report_secret: Secret | None = None  # signs CALL_REPORT_URL posts (observability/signing.py)
    recording: recording_settings.RecordingSettings | None = None  # RECORDINGS_DIR set: calls are recorded
    upstream: Upstream = field(
        default_factory=lambda: Upstream(provider="echo", url="ws://127.0.0.1:0/v1/realtime", dialect="ga")
    )
    # Which upstream was chosen and why, e.g. "azure: AZURE_OPENAI_ENDPOINT is set (OPENAI_API_KEY is set
    # too: set REALTIME_PROVIDER to choose)"; logged at start-up.
    upstream_choice: str = ""
    agent: Agent = field(default_factory=Agent)
    stream_token_secret: Secret = field(default_factory=lambda: Secret(secrets.token_urlsafe(32)))
    stream_token_secret_generated: bool = True
    stream_token_ttl_s: float = 60.0
    admin_token: Secret | None = None
    fallback: Fallback = field(default_factory=lambda: Fallback(DEFAULT_FALLBACK_MESSAGE))
    carriers: Mapping[str, Any] = field(default_factory=lambda: registry.load_settings(Env({})))  # by carrier name
    agents: AgentBook | None = None  # AGENTS_FILE's profiles and routes; None: `agent` is the one agent
    prices: PriceTable = field(default_factory=lambda: PriceTable({}))  # PRICES_FILE: USD per 1M tokens, by model
    echo_tool_script: ToolScript | None = None  # ECHO_TOOL_SCRIPT: the offline echo line calls tools on cue
    outbound: outbound_settings.OutboundSettings = field(default_factory=outbound_settings.OutboundSettings)
    echo_delays: echo_settings.EchoDelays = field(default_factory=echo_settings.EchoDelays)  # ECHO_*_DELAY_MS
    warm_upstream: pool_settings.WarmSettings = field(default_factory=pool_settings.WarmSettings)  # WARM_UPSTREAM_*
    warnings: tuple[str, ...] = ()  # valid but worth a word at start-up (never a secret)

    @property
    def offline(self) -> bool:
        return self.upstream.provider == "echo"

    def secrets(self) -> list[str]:
        """Every secret value, for the log redaction (bearer headers also without their scheme)."""
        values = [self.stream_token_secret, self.admin_token, self.call_report_secret,
                  *(v for _, v in self.upstream.headers),
                  *registry.secrets(self.carriers), *self.agent.tools.secrets(),
                  *(s for p in (self.agents.profiles.values() if self.agents else ()) for s in p.agent.tools.secrets())]
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


# REALTIME_PROVIDER=auto picks the first of these that is set.
_AUTO_ORDER: tuple[tuple[Provider, str], ...] = (
    ("custom", "REALTIME_URL"), ("azure", "AZURE_OPENAI_ENDPOINT"), ("openai", "OPENAI_API_KEY"))


def _choose_provider(env: CollectingEnv) -> tuple[Provider | None, str]:
    """The upstream provider and why it was chosen; None when REALTIME_PROVIDER is invalid."""
    setting = env.choice("REALTIME_PROVIDER", "auto", ("auto", "openai", "azure", "custom", "echo"))
    if "REALTIME_PROVIDER" in env.invalid:
        return None, ""
    if setting != "auto":
        return setting, f"{setting}: REALTIME_PROVIDER={setting}"  # type: ignore[return-value]
    set_vars = {
        "REALTIME_URL": env.str("REALTIME_URL"),
        "AZURE_OPENAI_ENDPOINT": env.str("AZURE_OPENAI_ENDPOINT"),
        "OPENAI_API_KEY": env.str("OPENAI_API_KEY"),
    }
    configured = [(provider, name) for provider, name in _AUTO_ORDER if set_vars[name]]
    if not configured:
        return "echo", "echo: none of REALTIME_URL, AZURE_OPENAI_ENDPOINT, OPENAI_API_KEY is set"
    (provider, name), others = configured[0], [other for _, other in configured[1:]]
    why = f"{provider}: {name} is set"
    if others:
        why += (f" ({' and '.join(others)} {'is' if len(others) == 1 else 'are'} set too: "
                "set REALTIME_PROVIDER to choose)")
    return provider, why


def _azure_identity_installed() -> bool:
    try:
        return importlib.util.find_spec("azure.identity") is not None
    except ModuleNotFoundError:
        return False


def _upstream(env: CollectingEnv, provider: Provider | None) -> Upstream | None:
    dialect_setting = env.choice("REALTIME_DIALECT", "auto", ("auto", "ga", "beta"))
    timeout = env.float("UPSTREAM_CONNECT_TIMEOUT_S", 10.0, 0.5, 120.0)
    retries = env.int("UPSTREAM_CONNECT_RETRIES", 2, 0, 10) or 0
    backoff = env.float("UPSTREAM_RETRY_BACKOFF_S", 0.5, 0.0, 30.0)
    model = env.str("OPENAI_REALTIME_MODEL", "gpt-realtime")
    azure_auth = env.choice("AZURE_OPENAI_AUTH", "auto", ("auto", "key", "entra"))  # checked whatever the provider
    headers: list[tuple[str, Secret | str]] = []
    auth: UpstreamAuth = "none"
    entra_scope: str | None = None
    url = ""

    if provider is None:  # REALTIME_PROVIDER is invalid: already reported
        return None
    if provider == "echo":
        url = "ws://127.0.0.1:0/v1/realtime"  # the real port is known once the echo line listens
    elif provider == "openai":
        key = env.secret("OPENAI_API_KEY")
        if not key:
            env.error("OPENAI_API_KEY is required when REALTIME_PROVIDER=openai")
        else:
            headers.append(("Authorization", Secret(f"Bearer {key.reveal()}")))
            auth = "bearer"
        base = env.check(lambda: check_url("OPENAI_REALTIME_URL", env.str("OPENAI_REALTIME_URL", OPENAI_REALTIME_URL)
                                           or "", ("wss", "ws")), None)
        url = _with_query(base, model=model or "") if base else ""
    elif provider == "azure":
        raw_endpoint = env.str("AZURE_OPENAI_ENDPOINT")
        endpoint = None
        if not raw_endpoint:
            env.error("AZURE_OPENAI_ENDPOINT is required when REALTIME_PROVIDER=azure "
                      "(your resource's https://<name>.openai.azure.com)")
        else:
            endpoint = env.check(lambda: check_url("AZURE_OPENAI_ENDPOINT", raw_endpoint,
                                                   ("https", "wss", "http", "ws")), None)
        deployment = env.str("AZURE_OPENAI_DEPLOYMENT")
        if not deployment:
            env.error("AZURE_OPENAI_DEPLOYMENT is required with AZURE_OPENAI_ENDPOINT "
                      "(the name of your realtime deployment)")
        key = env.secret("AZURE_OPENAI_API_KEY")
        if azure_auth == "key" and not key:
            env.error("AZURE_OPENAI_API_KEY is required when AZURE_OPENAI_AUTH=key "
                      "(or set AZURE_OPENAI_AUTH=entra to use Microsoft Entra ID)")
        elif azure_auth == "entra" or not key:  # auto without a key: Entra ID
            if key:
                env.warn("AZURE_OPENAI_API_KEY is set but AZURE_OPENAI_AUTH=entra: the key is not used")
            if not _azure_identity_installed():
                env.error("Microsoft Entra ID authentication (AZURE_OPENAI_AUTH=entra, or auto without "
                          "AZURE_OPENAI_API_KEY) needs the azure-identity package: pip install azure-identity")
            auth, entra_scope = "entra", AZURE_ENTRA_SCOPE
        else:
            headers.append(("api-key", key))
            auth = "api-key"
        if endpoint and deployment:
            base = _ws_scheme(endpoint).rstrip("/")
            api_version = env.str("AZURE_OPENAI_API_VERSION")
            if api_version:  # the deprecated preview route, beta shapes
                url = _with_query(base + "/openai/realtime", **{"api-version": api_version, "deployment": deployment})
            else:
                url = _with_query(base + "/openai/v1/realtime", model=deployment)
        model = deployment
    else:  # custom
        raw_url = env.str("REALTIME_URL")
        if not raw_url:
            env.error("REALTIME_URL is required when REALTIME_PROVIDER=custom")
        else:
            url = env.check(lambda: check_url("REALTIME_URL", raw_url, ("wss", "ws")), "")
        key = env.secret("REALTIME_API_KEY")
        key_auth = env.choice("REALTIME_AUTH", "bearer", ("bearer", "api-key"))
        if key:
            if key_auth == "bearer":
                headers.append(("Authorization", Secret(f"Bearer {key.reveal()}")))
                auth = "bearer"
            else:
                headers.append(("api-key", key))
                auth = "api-key"
        model = env.str("OPENAI_REALTIME_MODEL")

    inferred: Dialect = _infer_dialect(url) if url else "ga"
    dialect: Dialect = inferred if dialect_setting == "auto" else dialect_setting  # type: ignore[assignment]
    if provider == "openai" and dialect == "beta":
        env.error("REALTIME_DIALECT=beta cannot be used with OpenAI's endpoint: it speaks only GA "
                  "since 2026-05-12 (use ga, or a custom REALTIME_URL)")
    if dialect == "beta" and provider in ("openai", "custom"):
        headers.append(("OpenAI-Beta", "realtime=v1"))
    return Upstream(provider=provider, url=url, dialect=dialect, headers=tuple(headers), model=model,
                    connect_timeout_s=timeout, connect_retries=retries, retry_backoff_s=backoff, auth=auth,
                    entra_scope=entra_scope)


def _voice(env: CollectingEnv, provider: Provider | None) -> str:
    """AGENT_VOICE: one of OpenAI's voices for OpenAI and Azure; any plain name for a custom server
    (which may have voices of its own) or the echo line, with a warning outside OpenAI's list."""
    voice = env.str("AGENT_VOICE", "alloy") or "alloy"
    if not voice.replace("_", "").replace("-", "").isalnum():
        env.error(f"AGENT_VOICE must be a voice name such as {', '.join(GA_VOICES)} (got {voice!r})")
    elif voice.lower() in GA_VOICES:
        return voice.lower()
    elif provider in ("openai", "azure"):
        env.error(f"AGENT_VOICE must be one of {', '.join(GA_VOICES)} with REALTIME_PROVIDER={provider} "
                  f"(got {voice!r})")
    elif provider is not None:
        env.warn(f"AGENT_VOICE {voice!r} is not one of OpenAI's voices ({', '.join(GA_VOICES)}): the "
                 f"{provider} upstream must know it (OpenAI and Azure would refuse it)")
    return voice


def _agent(env: CollectingEnv, provider: Provider | None, environ: Mapping[str, str], dialect: str | None) -> Agent:
    instructions = env.check(lambda: read_instructions(env), None)
    tools_file = env.str("TOOLS_FILE")
    voice = _voice(env, provider)
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
    tools = env.check(lambda: load_tools_file(tools_file, environ, dialect), ToolsSpec())
    check_keypad(env, tools, mode)
    return Agent(
        instructions=instructions or DEFAULT_INSTRUCTIONS,
        voice=voice,
        greeting=env.str("AGENT_GREETING"),
        turn_detection=turn,
        transcription_model=env.str("INPUT_TRANSCRIPTION_MODEL"),
        transcription_language=env.str("INPUT_TRANSCRIPTION_LANGUAGE"),
        noise_reduction=None if noise == "off" else noise,  # type: ignore[arg-type]
        tools=tools,
        idle=read_idle(env, mode),
    )


_PHONE_NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$")


def _fallback(env: CollectingEnv) -> Fallback:
    number = env.str("FALLBACK_NUMBER")
    if number and not _PHONE_NUMBER.match(number):
        env.error(f"FALLBACK_NUMBER must be a phone number in E.164 form, e.g. +14155550100 (got {number!r})")
    message = env.str("FALLBACK_MESSAGE", DEFAULT_FALLBACK_MESSAGE) or DEFAULT_FALLBACK_MESSAGE
    if len(message) > 1000:
        env.error("FALLBACK_MESSAGE must be at most 1000 characters long")
    return Fallback(message=message, number=number)


def _carriers(env: CollectingEnv, environ: Mapping[str, str]) -> dict[str, Any]:
    """Each carrier's settings (as `registry.load_settings`), each carrier's error reported with the rest."""
    strict = Env(environ)  # a carrier's own checks may build on its reads: it stops at its first error
    return {name: env.check(lambda carrier=carrier: carrier.load_settings(strict), None)
            for name, carrier in registry.CARRIERS.items()}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raises one ConfigError listing every problem, one per line,
    each fit for a user."""
    environ = os.environ if environ is None else environ
    env = CollectingEnv(environ)
    public_url = env.str("PUBLIC_URL")
    if public_url:
        public_url = env.check(lambda: check_url("PUBLIC_URL", public_url, ("https", "http")).rstrip("/"), None)
    port = env.int("PORT", 8080, 1, 65535)
    metrics_port = env.int("METRICS_PORT", None, 1, 65535)
    if metrics_port is not None and metrics_port == port and not env.invalid & {"PORT", "METRICS_PORT"}:
        env.error(f"METRICS_PORT must differ from PORT (both {port})")
    token_secret = env.secret("STREAM_TOKEN_SECRET")
    if token_secret and len(token_secret.reveal()) < 16:
        env.error("STREAM_TOKEN_SECRET must be at least 16 characters long")
    provider, choice = _choose_provider(env)
    report_url, script = env.str("CALL_REPORT_URL"), env.str("ECHO_TOOL_SCRIPT")
    upstream = _upstream(env, provider)
    if script and provider != "echo":
        env.warn("ECHO_TOOL_SCRIPT is set but the upstream is not the offline echo line: it is not used")
    agent = _agent(env, provider, environ, upstream.dialect if upstream else None)
    agents, prices = read_agents(env, agent, provider, upstream.dialect if upstream else None, environ,
                                 upstream.model if upstream else None)
    settings = Settings(
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
        upstream_ready_timeout_s=env.float("UPSTREAM_READY_TIMEOUT_S", 5.0, 0.5, 120.0),
        http_idle_timeout_s=env.float("HTTP_IDLE_TIMEOUT_S", 15.0, 0.5, 3600.0),
        session_max_s=_session_max(env),
        send_stall_timeout_s=env.float("SEND_STALL_TIMEOUT_S", 10.0, 1.0, 300.0),
        call_reports_dir=env.check(lambda: reports_dir(env), None),
        call_report_url=env.check(lambda: check_url("CALL_REPORT_URL", report_url, ("https", "http")), None)
        if report_url else None,
        call_report_mask_numbers=env.bool("CALL_REPORT_MASK_NUMBERS", False),
        call_report_secret=signing.read_secret(env, report_url),
        recording=recording_settings.read(env),
        upstream=upstream,  # type: ignore[arg-type]
        upstream_choice=choice,
        agent=agent,
        agents=agents,
        prices=prices,
        stream_token_secret=token_secret or Secret(secrets.token_urlsafe(32)),
        stream_token_secret_generated=token_secret is None,
        stream_token_ttl_s=env.float("STREAM_TOKEN_TTL_S", 60.0, 1.0, 3600.0),
        admin_token=env.secret("ADMIN_TOKEN"),
        fallback=_fallback(env),
        carriers=_carriers(env, environ),
        echo_tool_script=env.check(lambda: load_script(script), None),
        outbound=outbound_settings.read(env),  # OUTBOUND_*: calls placed through POST /calls
        echo_delays=echo_settings.read(env),
        warm_upstream=pool_settings.read(env, env.float("SESSION_MAX_S", 3300.0, 0.0, 86400.0)),
        warnings=tuple(dict.fromkeys(env.warnings)),  # last: every read above has run
    )
    if env.errors:
        raise ConfigError.of(dict.fromkeys(env.errors))  # in the order found, each once
    return settings


def _session_max(env: CollectingEnv) -> float:
    value = env.float("SESSION_MAX_S", 3300.0, 0.0, 86400.0)
    if 0 < value < 1:
        env.error(f"SESSION_MAX_S must be 0 (never recycle) or at least 1 second (got {value:g})")
    return value
