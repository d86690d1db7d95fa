"""Settings of the agent read by `config` with the rest (every problem reported with the others, at
start-up): its instructions (AGENT_INSTRUCTIONS or AGENT_INSTRUCTIONS_FILE), how the tools file's keypad
section fits the turn detection, and what a silent line gets:

    IDLE_REPROMPT_S              silent this long after the agent's last answer played: the model checks in
    IDLE_HANGUP_S                silent this long: a short goodbye, then the call ends (longer than the above)
    IDLE_REPROMPT_INSTRUCTIONS   what the model is asked for the check-in (added to its instructions)
    IDLE_HANGUP_INSTRUCTIONS     what it is asked for the goodbye

0 turns either off (the default). The timing is the core's (`core.idle`), the same for every dialect and
turn detection; with TURN_DETECTION=none the gateway hears no speech until the caller's turn is committed
(by the keypad's commit_key), so only keys, commits and answers end a silence there: a warning says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.core.idle import DEFAULT_GOODBYE, DEFAULT_REPROMPT, IdlePolicy
from gateway.env import CollectingEnv, ConfigError, Env
from gateway.tools.spec import ToolsSpec

MAX_INSTRUCTIONS_CHARS = 2000
GA_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
DEFAULT_INSTRUCTIONS = ("You are a helpful, friendly voice assistant answering a phone call. "
                        "Keep answers short and conversational.")


@dataclass(frozen=True)
class StoredPrompt:
    """GA `session.prompt`: a prompt kept in OpenAI's dashboard, by id (and version; None: the latest)."""

    id: str
    version: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)


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
    tools: ToolsSpec = field(default_factory=ToolsSpec)  # TOOLS_FILE
    idle: IdlePolicy = field(default_factory=IdlePolicy)  # IDLE_* (agent_settings)
    # An OpenAI stored prompt (GA only) used instead of, or before, the instructions: edited in OpenAI's
    # dashboard without a deploy. None: the instructions alone.
    prompt: StoredPrompt | None = None
    name: str = "default"  # the agent profile's name (AGENTS_FILE), on the call's logs, metrics and summary



def _seconds(env: CollectingEnv, name: str, value: float) -> float:
    if 0 < value < 0.5:
        env.error(f"{name} must be 0 (off) or at least 0.5 seconds (got {value:g})")
        return 0.0
    return value


def _instructions(env: CollectingEnv, name: str, text: str | None, default: str) -> str:
    if text and len(text) > MAX_INSTRUCTIONS_CHARS:
        env.error(f"{name} must be at most {MAX_INSTRUCTIONS_CHARS} characters long (got {len(text)})")
        return default
    return text or default


def read_idle(env: CollectingEnv, turn_detection: str) -> IdlePolicy:
    """IDLE_*: the silence timeouts; the hang-up must come after the check-in when both are set."""
    reprompt = _seconds(env, "IDLE_REPROMPT_S", env.float("IDLE_REPROMPT_S", 0.0, 0.0, 86400.0))
    hangup = _seconds(env, "IDLE_HANGUP_S", env.float("IDLE_HANGUP_S", 0.0, 0.0, 86400.0))
    if reprompt and hangup and hangup <= reprompt:
        env.error(f"IDLE_HANGUP_S must be longer than IDLE_REPROMPT_S when both are set (got {hangup:g} and "
                  f"{reprompt:g}): the check-in comes first, then the goodbye")
    if (reprompt or hangup) and turn_detection == "none":
        env.warn("IDLE_REPROMPT_S / IDLE_HANGUP_S with TURN_DETECTION=none: the gateway hears no caller speech "
                 "until a turn is committed (the tools file's dtmf.commit_key), so a caller who talks without "
                 "committing counts as silent")
    reprompt_text = _instructions(env, "IDLE_REPROMPT_INSTRUCTIONS",
                                  env.str("IDLE_REPROMPT_INSTRUCTIONS", DEFAULT_REPROMPT), DEFAULT_REPROMPT)
    goodbye_text = _instructions(env, "IDLE_HANGUP_INSTRUCTIONS",
                                 env.str("IDLE_HANGUP_INSTRUCTIONS", DEFAULT_GOODBYE), DEFAULT_GOODBYE)
    return IdlePolicy(reprompt, hangup, reprompt_text, goodbye_text)


def read_instructions(env: Env) -> str | None:
    """AGENT_INSTRUCTIONS, or the text of AGENT_INSTRUCTIONS_FILE (not both); None: neither is set."""
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
    return instructions


def check_keypad(env: CollectingEnv, tools: ToolsSpec, turn_detection: str) -> None:
    """The tools file's dtmf.commit_key commits turns only when turn detection is off: say so if it is on."""
    if tools.keypad.commit_key is not None and turn_detection != "none":
        env.warn(f"the tools file's dtmf.commit_key ({tools.keypad.commit_key}) is only used with "
                 f"TURN_DETECTION=none (it is {turn_detection}): the key is taken as any other key")
