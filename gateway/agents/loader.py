"""Reading the agents file (AGENTS_FILE, YAML or JSON) into an `AgentBook`, at start-up and on SIGHUP.

Every problem of the file is reported at once, each naming the profile and the field
(`agents.sales.voice: ...`). A profile starts from the agent the environment variables describe
(AGENT_VOICE, TURN_DETECTION, ...) and overrides what it names, so a file with one short profile per
number stays short.

    default: support                  # the profile of a number no route names (required with 2+ agents)
    agents:
      support:                        # a name: letters, digits, _ and - (it is a metric label)
        instructions: |               # or instructions_file: (relative to this file); {{from}}, {{to}},
          ...                         # {{now}} and an outbound call's variables are filled per call
        prompt: {id: pmpt_..., version: "3", variables: {company: Acme}}   # GA: an OpenAI stored prompt
        voice, greeting, model, language, noise_reduction, tools_file, max_call_duration_s, from_number
        turn_detection: {mode, threshold, prefix_padding_ms, silence_duration_ms, eagerness,
                         create_response, interrupt_response}
        transcription: {model, language}
        idle: {reprompt_s, hangup_s, reprompt_instructions, hangup_instructions}
        voicemail: {mode: hangup | speak | say, message}
    routes:                           # dialed number (E.164) or pattern (* any digits, ? one) -> agent
      "+14155550100": sales
      "+1800*": support
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import yaml

from gateway.agent_settings import GA_VOICES, MAX_INSTRUCTIONS_CHARS, Agent, StoredPrompt, TurnDetection
from gateway.agents.profile import AgentBook, Profile, Route, Voicemail
from gateway.core.idle import IdlePolicy
from gateway.env import ConfigError
from gateway.filecheck import FileCheck, kind
from gateway.tools.loader import load_tools_file

MAX_FILE_BYTES = 1024 * 1024
MAX_AGENTS = 100  # the `agent` label's bound
MAX_PROFILE_INSTRUCTIONS = 32_000
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PATTERN = re.compile(r"^\+?[0-9*?]{1,16}$")
_MODEL = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
_PROMPT_ID = re.compile(r"^pmpt_[A-Za-z0-9_-]{1,100}$")

PROFILE_FIELDS = ("instructions", "instructions_file", "prompt", "voice", "greeting", "model", "language",
                  "noise_reduction", "tools_file", "max_call_duration_s", "from_number", "turn_detection",
                  "transcription", "idle", "voicemail")
TURN_FIELDS = ("mode", "threshold", "prefix_padding_ms", "silence_duration_ms", "eagerness", "create_response",
               "interrupt_response")


class _Check(FileCheck):
    """The agents file's problems; its strings are bounded (2000 characters unless said)."""

    def __init__(self, source: str) -> None:
        super().__init__("AGENTS_FILE", source)

    def text(self, entry: Mapping[str, Any], key: str, where: str, limit: int = 2000) -> str | None:  # type: ignore[override]
        return super().text(entry, key, where, limit=limit)


def read_file(path: Path, source: str) -> Any:
    """The parsed file (YAML, or JSON for a .json name); ConfigError when it cannot be read or parsed."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"AGENTS_FILE cannot be read: {source} ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"AGENTS_FILE {source} is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        return orjson.loads(raw) if path.suffix.lower() == ".json" else yaml.safe_load(raw)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"AGENTS_FILE {source} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: "
                          f"{detail}") from None


ToolsLoader = Callable[[str], Any]


class _Profiles:
    """Reads one profile on top of the base agent."""

    def __init__(self, check: _Check, base: Agent, directory: Path, provider: str | None, dialect: str | None,
                 environ: Mapping[str, str]) -> None:
        self.check, self.base, self.directory = check, base, directory
        self.provider, self.dialect, self.environ = provider, dialect, environ

    def read(self, name: str, entry: Any) -> Profile | None:
        check, base = self.check, self.base
        where = f"agents.{name}"
        entry = check.mapping(entry, where, PROFILE_FIELDS)
        if entry is None:
            return None
        prompt = self._prompt(entry.get("prompt"), f"{where}.prompt")
        instructions = self._instructions(entry, where, base.instructions if prompt is None else "")
        voice = self._voice(entry, where)
        greeting = entry.get("greeting", base.greeting)
        if greeting is not None and (not isinstance(greeting, str) or len(greeting) > 2000):
            check.error(f"{where}.greeting", f"must be a string of at most 2000 characters (got {kind(greeting)})")
            greeting = base.greeting
        turn = self._turn(entry.get("turn_detection"), f"{where}.turn_detection")
        transcription_model, language = base.transcription_model, base.transcription_language
        if "transcription" in entry:
            t = check.mapping(entry["transcription"], f"{where}.transcription", ("model", "language"))
            if t is not None:
                transcription_model = check.text(t, "model", f"{where}.transcription", 100) or transcription_model
                language = check.text(t, "language", f"{where}.transcription", 20) or language
        language = check.text(entry, "language", where, 20) or language
        if language and not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?", language):
            check.error(f"{where}.language", f"must be a language code such as en or pt-BR (got {language!r})")
        noise = check.choice(entry, "noise_reduction", where, base.noise_reduction or "off",
                             ("off", "near_field", "far_field"))
        tools = base.tools
        tools_file = check.text(entry, "tools_file", where, 1000)
        if tools_file:
            path = self.directory / tools_file
            try:
                tools = load_tools_file(str(path), self.environ, self.dialect)
            except ConfigError as exc:
                for line in str(exc).splitlines():
                    check.error(f"{where}.tools_file", line)
        agent = Agent(instructions=instructions, voice=voice, greeting=greeting or None, turn_detection=turn,
                      transcription_model=transcription_model, transcription_language=language,
                      noise_reduction=None if noise == "off" else noise,  # type: ignore[arg-type]
                      tools=tools, idle=self._idle(entry.get("idle"), f"{where}.idle", turn.mode), prompt=prompt,
                      name=name)
        model = check.text(entry, "model", where, 100)
        if model and not _MODEL.match(model):
            check.error(f"{where}.model", f"must be a model (or Azure deployment) name (got {model!r})")
        from_number = check.text(entry, "from_number", where, 20)
        if from_number and not _E164.match(from_number):
            check.error(f"{where}.from_number", f"must be a phone number in E.164 form, e.g. +14155550100 "
                        f"(got {from_number!r})")
        duration = None
        if "max_call_duration_s" in entry:
            duration = check.number(entry, "max_call_duration_s", where, 14400.0, 10.0, 86400.0)
        return Profile(name, agent, model=model, from_number=from_number,
                       voicemail=self._voicemail(entry.get("voicemail"), f"{where}.voicemail"),
                       max_call_duration_s=duration)

    def _instructions(self, entry: Mapping[str, Any], where: str, default: str) -> str:
        check = self.check
        text = check.text(entry, "instructions", where, MAX_PROFILE_INSTRUCTIONS)
        file = check.text(entry, "instructions_file", where, 1000)
        if text and file:
            check.error(where, "set instructions or instructions_file, not both")
        if file:
            try:
                text = (self.directory / file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                check.error(f"{where}.instructions_file", f"cannot be read: {file} ({exc.strerror})")
                return default
            except UnicodeDecodeError:
                check.error(f"{where}.instructions_file", f"is not UTF-8 text: {file}")
                return default
            if not text or len(text) > MAX_PROFILE_INSTRUCTIONS:
                check.error(f"{where}.instructions_file", f"must hold 1 to {MAX_PROFILE_INSTRUCTIONS} characters "
                            f"(got {len(text)}): {file}")
                return default
        return text or default

    def _prompt(self, value: Any, where: str) -> StoredPrompt | None:
        check = self.check
        if value is None:
            return None
        entry = check.mapping(value, where, ("id", "version", "variables"))
        if entry is None:
            return None
        if self.dialect == "beta":
            check.error(where, "a stored prompt needs the GA dialect (the beta protocol has no session.prompt)")
        prompt_id = entry.get("id")
        if not isinstance(prompt_id, str) or not _PROMPT_ID.match(prompt_id):
            check.error(f"{where}.id", f"must be a stored prompt id such as pmpt_abc123 (got {prompt_id!r})")
            return None
        version = entry.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, str | int)):
            check.error(f"{where}.version", f"must be a version string or number (got {kind(version)})")
            version = None
        variables = entry.get("variables") or {}
        if not isinstance(variables, dict) or not all(isinstance(k, str) and isinstance(v, str | int | float)
                                                      and not isinstance(v, bool) for k, v in variables.items()):
            check.error(f"{where}.variables", "must map names to strings")
            variables = {}
        return StoredPrompt(prompt_id, None if version is None else str(version),
                            {k: str(v) for k, v in variables.items()})

    def _voice(self, entry: Mapping[str, Any], where: str) -> str:
        voice = entry.get("voice")
        if voice is None:
            return self.base.voice
        if not isinstance(voice, str) or not voice.replace("_", "").replace("-", "").isalnum():
            self.check.error(f"{where}.voice", f"must be a voice name such as {', '.join(GA_VOICES)} (got {voice!r})")
            return self.base.voice
        if voice.lower() in GA_VOICES:
            return voice.lower()
        if self.provider in ("openai", "azure"):
            self.check.error(f"{where}.voice", f"must be one of {', '.join(GA_VOICES)} with "
                             f"REALTIME_PROVIDER={self.provider} (got {voice!r})")
            return self.base.voice
        return voice

    def _turn(self, value: Any, where: str) -> TurnDetection:
        base = self.base.turn_detection
        if value is None:
            return base
        check = self.check
        entry = check.mapping(value, where, TURN_FIELDS)
        if entry is None:
            return base
        return TurnDetection(
            mode=check.choice(entry, "mode", where, base.mode, ("server_vad", "semantic_vad", "none")),  # type: ignore[arg-type]
            threshold=check.number(entry, "threshold", where, base.threshold, 0.0, 1.0),
            prefix_padding_ms=int(check.number(entry, "prefix_padding_ms", where, base.prefix_padding_ms, 0, 5000)),
            silence_duration_ms=int(check.number(entry, "silence_duration_ms", where, base.silence_duration_ms,
                                                 0, 10000)),
            eagerness=check.choice(entry, "eagerness", where, base.eagerness,  # type: ignore[arg-type]
                                   ("low", "medium", "high", "auto")),
            create_response=check.flag(entry, "create_response", where, base.create_response),
            interrupt_response=check.flag(entry, "interrupt_response", where, base.interrupt_response),
        )

    def _idle(self, value: Any, where: str, mode: str) -> IdlePolicy:
        base = self.base.idle
        if value is None:
            return base
        check = self.check
        entry = check.mapping(value, where, ("reprompt_s", "hangup_s", "reprompt_instructions", "hangup_instructions"))
        if entry is None:
            return base
        reprompt = check.number(entry, "reprompt_s", where, base.reprompt_s, 0.0, 86400.0)
        hangup = check.number(entry, "hangup_s", where, base.hangup_s, 0.0, 86400.0)
        for key, seconds in (("reprompt_s", reprompt), ("hangup_s", hangup)):
            if 0 < seconds < 0.5:
                check.error(f"{where}.{key}", f"must be 0 (off) or at least 0.5 seconds (got {seconds:g})")
        if reprompt and hangup and hangup <= reprompt:
            check.error(f"{where}.hangup_s", f"must be longer than reprompt_s when both are set (got {hangup:g} "
                        f"and {reprompt:g})")
        return replace(base, reprompt_s=reprompt, hangup_s=hangup,
                       reprompt_instructions=check.text(entry, "reprompt_instructions", where,
                                                        MAX_INSTRUCTIONS_CHARS) or base.reprompt_instructions,
                       goodbye_instructions=check.text(entry, "hangup_instructions", where,
                                                       MAX_INSTRUCTIONS_CHARS) or base.goodbye_instructions)

    def _voicemail(self, value: Any, where: str) -> Voicemail:
        if value is None:
            return Voicemail()
        check = self.check
        entry = check.mapping(value, where, ("mode", "message"))
        if entry is None:
            return Voicemail()
        mode = check.choice(entry, "mode", where, "hangup", ("hangup", "speak", "say"))
        message = check.text(entry, "message", where, MAX_INSTRUCTIONS_CHARS)
        if mode in ("speak", "say") and not message:
            what = "what the model is asked to say" if mode == "speak" else "what the carrier says"
            check.error(f"{where}.message", f"is required with mode {mode} ({what})")
        return Voicemail(mode, message)  # type: ignore[arg-type]


def load_agents_file(path: str | None, base: Agent, *, provider: str | None = None, dialect: str | None = None,
                     environ: Mapping[str, str] | None = None) -> AgentBook | None:
    """The book the file describes, on top of `base` (the environment's agent); None when no file is set.
    Raises ConfigError listing every problem, one per line."""
    if not path:
        return None
    file = Path(path)
    data = read_file(file, path)
    check = _Check(path)
    top = check.mapping(data, "the file", ("default", "agents", "routes"))
    if top is None:
        raise ConfigError.of(check.errors)
    agents = check.mapping(top.get("agents"), "agents")
    profiles: dict[str, Profile] = {}
    reader = _Profiles(check, base, file.parent, provider, dialect, environ or {})
    for name, entry in (agents or {}).items():
        if not isinstance(name, str) or not _NAME.match(name):
            check.error(f"agents.{name}", "a name must be 1-40 letters, digits, _ or - (it is a metric label)")
            continue
        profile = reader.read(name, entry)
        if profile is not None:
            profiles[name] = profile
    if agents is not None and not agents:
        check.error("agents", "must name at least one agent")
    if len(profiles) > MAX_AGENTS:
        check.error("agents", f"at most {MAX_AGENTS} agents (got {len(profiles)})")
    default = top.get("default")
    if default is None and len(profiles) == 1:
        default = next(iter(profiles))
    if default is None:
        if len(profiles) > 1:
            check.error("default", f"is required with more than one agent (one of {', '.join(sorted(profiles))})")
    elif not isinstance(default, str) or (agents and default not in agents):
        check.error("default", f"must name one of the agents ({', '.join(sorted(profiles)) or 'none'}); "
                    f"got {default!r}")
    routes = _routes(check, top.get("routes"), profiles, agents or {})
    if check.errors:
        raise ConfigError.of(check.errors)
    assert isinstance(default, str)
    return AgentBook(profiles, default, tuple(routes), source=path)


def _routes(check: _Check, value: Any, profiles: Mapping[str, Profile], named: Mapping[str, Any]) -> list[Route]:
    if value is None:
        return []
    pairs: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        for i, item in enumerate(value):
            entry = check.mapping(item, f"routes[{i}]", ("number", "agent"))
            if entry is not None:
                pairs.append((entry.get("number"), entry.get("agent")))
    else:
        check.error("routes", f"must map numbers to agents (got {kind(value)})")
    routes = []
    seen: set[str] = set()
    for number, agent in pairs:
        where = f"routes.{number}"
        pattern = str(number) if isinstance(number, str | int) and not isinstance(number, bool) else ""
        if isinstance(number, int):
            check.error(where, "a number must be quoted (\"+14155550100\"): YAML reads a bare one as an integer")
            continue
        wild = any(c in pattern for c in "*?")
        if not (_E164.match(pattern) if not wild else _PATTERN.match(pattern)):
            check.error(where, "must be a number in E.164 form (+14155550100) or a pattern of digits with * "
                        "(any digits) and ? (one digit), e.g. +1800*")
            continue
        if pattern in seen:
            check.error(where, "is routed twice")
            continue
        seen.add(pattern)
        if not isinstance(agent, str) or agent not in named:
            check.error(where, f"names no agent of the file ({', '.join(sorted(profiles)) or 'none'}); got {agent!r}")
            continue
        if agent in profiles:
            routes.append(Route(pattern, agent))
    return routes
