"""Session shapes of the echo line: strict `session.update` validation, defaults and merging, for the
beta and GA Realtime dialects (field lists from protocol-reference.md §1.2 and §2.2).

Validation never mutates; a whole update is checked before anything of it is applied, so one bad
field rejects the update like the real service does.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Any

from gateway.sim.audio import ALAW_FORMAT, PCM24_FORMAT, ULAW_FORMAT, SimFormat

Check = Callable[[Any, str], None]

FORMATS_NOTE = "this echo line speaks G.711 μ-law and A-law, and 16-bit PCM at 24 kHz"
# The audio format names of each dialect, and what they are (gateway.sim.audio.SimFormat).
BETA_FORMATS = {"g711_ulaw": ULAW_FORMAT, "g711_alaw": ALAW_FORMAT, "pcm16": PCM24_FORMAT}
GA_FORMATS = {"audio/pcmu": ULAW_FORMAT, "audio/pcma": ALAW_FORMAT, "audio/pcm": PCM24_FORMAT}


class SchemaError(Exception):
    def __init__(self, code: str, param: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.param = param
        self.message = message


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _type_error(path: str, expected: str, value: Any) -> SchemaError:
    return SchemaError(
        "invalid_type",
        path,
        f"Invalid type for '{path}': expected {expected}, but got {_kind(value)} instead.",
    )


def _value_error(path: str, value: Any, allowed: str) -> SchemaError:
    return SchemaError("invalid_value", path, f"Invalid value: {value!r}. {allowed}")


def is_str(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise _type_error(path, "a string", value)


def is_bool(value: Any, path: str) -> None:
    if not isinstance(value, bool):
        raise _type_error(path, "a boolean", value)


def anything(value: Any, path: str) -> None:
    return None


def number(lo: float | None = None, hi: float | None = None, *, integer: bool = False) -> Check:
    def check(value: Any, path: str) -> None:
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok:
            raise _type_error(path, "an integer" if integer else "a number", value)
        kind = "integer" if integer else "decimal"
        if lo is not None and value < lo:
            raise SchemaError(
                f"{kind}_below_min_value",
                path,
                f"Invalid '{path}': expected a value >= {lo}, but got {value}.",
            )
        if hi is not None and value > hi:
            raise SchemaError(
                f"{kind}_above_max_value",
                path,
                f"Invalid '{path}': expected a value <= {hi}, but got {value}.",
            )

    return check


def enum(*allowed: Any, note: str = "") -> Check:
    listing = ", ".join(repr(a) for a in allowed)

    def check(value: Any, path: str) -> None:
        if value not in allowed or isinstance(value, bool):
            raise _value_error(path, value, f"Supported values are: {listing}.{' ' + note if note else ''}")

    return check


def nullable(inner: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if value is not None:
            inner(value, path)

    return check


def either(*options: Check, expected: str) -> Check:
    def check(value: Any, path: str) -> None:
        for option in options:
            try:
                option(value, path)
                return
            except SchemaError:
                continue
        raise _type_error(path, expected, value)

    return check


def array(item: Check = anything) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise _type_error(path, "an array", value)
        for i, element in enumerate(value):
            item(element, f"{path}[{i}]")

    return check


def obj(fields: dict[str, Check] | None, required: tuple[str, ...] = ()) -> Check:
    """An object with exactly these keys allowed (None: any keys)."""

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _type_error(path, "an object", value)
        for key in required:
            if key not in value:
                raise SchemaError(
                    "missing_required_parameter",
                    f"{path}.{key}",
                    f"Missing required parameter: '{path}.{key}'.",
                )
        if fields is None:
            return
        for key in value:
            if key not in fields:
                raise SchemaError("unknown_parameter", f"{path}.{key}", f"Unknown parameter: '{path}.{key}'.")
        for key, element in value.items():
            fields[key](element, f"{path}.{key}")

    return check


def _modalities(allowed: tuple[tuple[str, ...], ...]) -> Check:
    def check(value: Any, path: str) -> None:
        array(is_str)(value, path)
        if tuple(sorted(value)) not in allowed:
            shown = " or ".join(repr(list(a)) for a in allowed)
            raise _value_error(path, value, f"Supported values are: {shown}.")

    return check


def _tool(value: Any, path: str) -> None:
    obj(None, required=("type",))(value, path)
    if value["type"] == "function":
        obj({"type": is_str, "name": is_str, "description": is_str, "parameters": anything})(value, path)


_TOKENS = either(number(1, 4096, integer=True), enum("inf"), expected="an integer or 'inf'")
_TRACING = nullable(either(enum("auto"), obj(None), expected="'auto', an object or null"))
_NOISE = nullable(obj({"type": enum("near_field", "far_field")}))
_EAGERNESS = enum("low", "medium", "high", "auto")


def _turn_detection(ga: bool) -> Check:
    fields: dict[str, Check] = {
        "type": enum("server_vad", "semantic_vad"),
        "threshold": number(0.0, 1.0),
        "prefix_padding_ms": number(0, integer=True),
        "silence_duration_ms": number(0, integer=True),
        "create_response": is_bool,
        "interrupt_response": is_bool,
        "eagerness": _EAGERNESS,
    }
    if ga:
        fields["idle_timeout_ms"] = nullable(number(0, integer=True))
    return nullable(obj(fields))


_TRANSCRIPTION_FIELDS: dict[str, Check] = {"model": is_str, "language": nullable(is_str), "prompt": is_str}

BETA_SESSION = obj(
    {
        "modalities": _modalities((("text",), ("audio", "text"))),
        "instructions": is_str,
        "voice": is_str,
        "input_audio_format": enum(*BETA_FORMATS, note=FORMATS_NOTE),
        "output_audio_format": enum(*BETA_FORMATS, note=FORMATS_NOTE),
        "input_audio_transcription": nullable(obj(_TRANSCRIPTION_FIELDS)),
        "turn_detection": _turn_detection(ga=False),
        "input_audio_noise_reduction": _NOISE,
        "tools": array(_tool),
        "tool_choice": is_str,
        "temperature": number(0.6, 1.2),
        "max_response_output_tokens": _TOKENS,
        "speed": number(0.25, 1.5),
        "tracing": _TRACING,
        "model": is_str,
        "client_secret": obj(
            {"expires_after": obj({"anchor": enum("created_at"), "seconds": number(10, 7200)})}
        ),
    }
)

_GA_FORMAT_FIELDS = obj(
    {"type": enum(*GA_FORMATS, note=FORMATS_NOTE), "rate": number(integer=True)}, required=("type",)
)


def _GA_FORMAT(value: Any, path: str) -> None:
    _GA_FORMAT_FIELDS(value, path)
    if value.get("type") == "audio/pcm" and value.get("rate", 24000) != 24000:
        raise _value_error(f"{path}.rate", value["rate"], "Supported values are: 24000.")
GA_SESSION = obj(
    {
        "type": enum("realtime", note="this echo line only runs realtime sessions"),
        "model": is_str,
        "instructions": is_str,
        "output_modalities": _modalities((("audio",), ("text",))),
        "audio": obj(
            {
                "input": obj(
                    {
                        "format": _GA_FORMAT,
                        "noise_reduction": _NOISE,
                        "transcription": nullable(
                            obj(
                                {
                                    **_TRANSCRIPTION_FIELDS,
                                    "languages": array(is_str),
                                    "keywords": array(is_str),
                                    "delay": anything,
                                }
                            )
                        ),
                        "turn_detection": _turn_detection(ga=True),
                    }
                ),
                "output": obj(
                    {
                        "format": _GA_FORMAT,
                        "voice": either(is_str, obj({"id": is_str}), expected="a string or an object"),
                        "speed": number(0.25, 1.5),
                    }
                ),
            }
        ),
        "tools": array(_tool),
        "tool_choice": either(is_str, obj(None, required=("type",)), expected="a string or an object"),
        "max_output_tokens": _TOKENS,
        "truncation": either(enum("auto", "disabled"), obj(None), expected="a string or an object"),
        "tracing": _TRACING,
        "include": nullable(array(enum("item.input_audio_transcription.logprobs"))),
        "prompt": nullable(obj(None)),
        "reasoning": nullable(obj({"effort": enum("minimal", "low", "medium", "high", "xhigh")})),
        "parallel_tool_calls": is_bool,
    },
    required=("type",),
)


def validate_update(session: Any, dialect: str) -> None:
    """Raise SchemaError for the first problem of a `session.update` payload."""
    (GA_SESSION if dialect == "ga" else BETA_SESSION)(session, "session")


DEFAULT_INSTRUCTIONS = "You are an echo line: every answer repeats what the caller just said."
SEMANTIC_SILENCE_MS = {"low": 800, "medium": 500, "high": 250, "auto": 500}


def normalize_turn_detection(value: dict[str, Any] | None, dialect: str) -> dict[str, Any] | None:
    """A turn_detection object as the server reports it: the type's fields, defaults filled in."""
    if value is None:
        return None
    kind = value.get("type", "server_vad")
    common = {
        "create_response": value.get("create_response", True),
        "interrupt_response": value.get("interrupt_response", True),
    }
    if kind == "semantic_vad":
        return {"type": kind, "eagerness": value.get("eagerness", "auto"), **common}
    out = {
        "type": "server_vad",
        "threshold": value.get("threshold", 0.5),
        "prefix_padding_ms": value.get("prefix_padding_ms", 300),
        "silence_duration_ms": value.get("silence_duration_ms", 500),
        **common,
    }
    if dialect == "ga":
        out["idle_timeout_ms"] = value.get("idle_timeout_ms")
    return out


def default_session(dialect: str, *, session_id: str, model: str, expires_at: int) -> dict[str, Any]:
    turn = normalize_turn_detection({"type": "server_vad"}, dialect)
    if dialect == "beta":
        return {
            "id": session_id,
            "object": "realtime.session",
            "model": model,
            "expires_at": expires_at,
            "modalities": ["text", "audio"],
            "instructions": DEFAULT_INSTRUCTIONS,
            "voice": "alloy",
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "g711_ulaw",
            "input_audio_transcription": None,
            "turn_detection": turn,
            "input_audio_noise_reduction": None,
            "tools": [],
            "tool_choice": "auto",
            "temperature": 0.8,
            "max_response_output_tokens": "inf",
            "speed": 1.0,
            "tracing": None,
        }
    return {
        "type": "realtime",
        "id": session_id,
        "object": "realtime.session",
        "model": model,
        "expires_at": expires_at,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": turn,
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "marin", "speed": 1.0},
        },
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "truncation": "auto",
        "tracing": None,
        "prompt": None,
        "include": None,
    }


_IGNORED = ("model", "client_secret")  # fixed at connect time / REST-only


def merge_session(current: dict[str, Any], update: dict[str, Any], dialect: str) -> dict[str, Any]:
    """The effective session after a validated update (the inputs are left untouched)."""
    merged = copy.deepcopy(current)
    for key, value in update.items():
        if key in _IGNORED:
            continue
        if key == "turn_detection":
            merged[key] = normalize_turn_detection(value, dialect)
        elif key == "audio":
            for side, fields in value.items():
                target = merged["audio"].setdefault(side, {})
                for name, field in fields.items():
                    if name == "turn_detection":
                        target[name] = normalize_turn_detection(field, dialect)
                    else:
                        target[name] = copy.deepcopy(field)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True, slots=True)
class TurnConfig:
    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int
    create_response: bool
    interrupt_response: bool


def turn_config(session: dict[str, Any], dialect: str) -> TurnConfig | None:
    """How the echo line's VAD runs for this session (None: the client commits itself)."""
    turn = session["turn_detection"] if dialect == "beta" else session["audio"]["input"]["turn_detection"]
    if turn is None:
        return None
    if turn["type"] == "semantic_vad":
        return TurnConfig(
            0.5,
            300,
            SEMANTIC_SILENCE_MS[turn["eagerness"]],
            turn["create_response"],
            turn["interrupt_response"],
        )
    return TurnConfig(
        turn["threshold"],
        turn["prefix_padding_ms"],
        turn["silence_duration_ms"],
        turn["create_response"],
        turn["interrupt_response"],
    )


def transcription_enabled(session: dict[str, Any], dialect: str) -> bool:
    if dialect == "beta":
        return session.get("input_audio_transcription") is not None
    return session["audio"]["input"].get("transcription") is not None


def audio_formats(session: dict[str, Any], dialect: str) -> tuple[SimFormat, SimFormat]:
    """The session's input and output audio formats."""
    if dialect == "beta":
        return BETA_FORMATS[session["input_audio_format"]], BETA_FORMATS[session["output_audio_format"]]
    audio = session["audio"]
    return GA_FORMATS[audio["input"]["format"]["type"]], GA_FORMATS[audio["output"]["format"]["type"]]


def voice_of(session: dict[str, Any], dialect: str) -> Any:
    return session["voice"] if dialect == "beta" else session["audio"]["output"]["voice"]


def voice_in_update(update: dict[str, Any], dialect: str) -> Any:
    if dialect == "beta":
        return update.get("voice")
    return update.get("audio", {}).get("output", {}).get("voice")


def _missing(path: str) -> SchemaError:
    return SchemaError("missing_required_parameter", path, f"Missing required parameter: '{path}'.")


_CONTENT_TYPES = {
    "user": ("input_text", "input_audio"),
    "system": ("input_text",),
    "assistant": ("text", "output_text"),
}


def client_item(item: Any, taken: Container[str], fresh_id: str) -> tuple[dict[str, Any], bytes]:
    """Check a `conversation.item.create` item (a message, a function_call or a function_call_output); return its
    server shape (audio bytes left out) and any user audio it carried."""
    if not isinstance(item, dict):
        raise _missing("item")
    kind = item.get("type", "message")
    item_id = item.get("id") or fresh_id
    if not isinstance(item_id, str) or item_id in taken:
        raise SchemaError("invalid_value", "item.id", f"Invalid 'item.id': {item_id!r} is already in use.")
    out: dict[str, Any] = {"id": item_id, "object": "realtime.item", "type": kind, "status": "completed"}
    if kind == "function_call_output":
        for key in ("call_id", "output"):
            if not isinstance(item.get(key), str):
                raise _missing(f"item.{key}")
        return {**out, "call_id": item["call_id"], "output": item["output"]}, b""
    if kind == "function_call":  # a function call carried over to a new session
        for key in ("call_id", "name", "arguments"):
            if not isinstance(item.get(key), str):
                raise _missing(f"item.{key}")
        return {**out, "call_id": item["call_id"], "name": item["name"], "arguments": item["arguments"]}, b""
    if kind != "message":
        allowed = "Supported values are: 'message', 'function_call', 'function_call_output'."
        raise _value_error("item.type", kind, allowed)
    role = item.get("role")
    if role not in _CONTENT_TYPES:
        raise _value_error("item.role", role, "Supported values are: 'user', 'system', 'assistant'.")
    content = item.get("content")
    if not isinstance(content, list) or not content:
        raise _missing("item.content")
    parts, audio = [], b""
    for i, part in enumerate(content):
        path = f"item.content[{i}]"
        part_type = part.get("type") if isinstance(part, dict) else None
        if part_type not in _CONTENT_TYPES[role]:
            shown = ", ".join(repr(t) for t in _CONTENT_TYPES[role])
            raise _value_error(f"{path}.type", part_type, f"Supported values for a {role} item: {shown}.")
        if part_type == "input_audio":
            try:
                audio += base64.b64decode(part.get("audio") or "", validate=True)
            except (binascii.Error, ValueError, TypeError):
                message = f"Invalid '{path}.audio': expected base64-encoded audio."
                raise SchemaError("invalid_value", f"{path}.audio", message) from None
            parts.append({"type": "input_audio", "transcript": part.get("transcript")})
        elif not isinstance(part.get("text"), str):
            raise _missing(f"{path}.text")
        else:
            parts.append({"type": part_type, "text": part["text"]})
    return {**out, "role": role, "content": parts}, audio


# Server event names that differ between the dialects.
NAMES: dict[str, dict[str, str]] = {
    "beta": {
        "audio_delta": "response.audio.delta",
        "audio_done": "response.audio.done",
        "transcript_delta": "response.audio_transcript.delta",
        "transcript_done": "response.audio_transcript.done",
        "assistant_audio": "audio",
        "assistant_text": "text",
    },
    "ga": {
        "audio_delta": "response.output_audio.delta",
        "audio_done": "response.output_audio.done",
        "transcript_delta": "response.output_audio_transcript.delta",
        "transcript_done": "response.output_audio_transcript.done",
        "assistant_audio": "output_audio",
        "assistant_text": "output_text",
    },
}


def response_object(
    dialect: str,
    session: dict[str, Any],
    *,
    response_id: str,
    conversation_id: str,
    status: str,
    output: list[dict[str, Any]],
    status_details: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "status_details": status_details,
        "output": output,
        "conversation_id": conversation_id,
    }
    if dialect == "beta":
        out.update(
            modalities=session["modalities"],
            voice=session["voice"],
            output_audio_format=session["output_audio_format"],
            temperature=session["temperature"],
            max_output_tokens=session["max_response_output_tokens"],
        )
    else:
        out.update(
            output_modalities=session["output_modalities"],
            audio={"output": copy.deepcopy(session["audio"]["output"])},
            max_output_tokens=session["max_output_tokens"],
        )
        out["audio"]["output"].pop("speed", None)
    out.update(metadata=None, usage=usage)
    return out


def audio_tokens(ms: float) -> int:
    return round(ms / 50)


def usage(
    input_audio_ms: float, instructions: str, output_audio_ms: float, transcript: str
) -> dict[str, Any]:
    """Deterministic usage: 1 audio token per 50 ms, 1 text token per 4 characters."""
    in_audio, in_text = audio_tokens(input_audio_ms), len(instructions) // 4
    out_audio, out_text = audio_tokens(output_audio_ms), len(transcript) // 4
    return {
        "total_tokens": in_audio + in_text + out_audio + out_text,
        "input_tokens": in_audio + in_text,
        "output_tokens": out_audio + out_text,
        "input_token_details": {"cached_tokens": 0, "text_tokens": in_text, "audio_tokens": in_audio},
        "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
    }
