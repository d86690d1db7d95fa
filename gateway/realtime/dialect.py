"""The two shapes of the Realtime protocol the gateway speaks: GA (default) and beta.

Only what differs lives here: the `session.update` body. GA rejects a whole update that carries one
unknown field, so each dialect builds its own from the agent settings and nothing is shared by
accident (protocol-reference.md §1.2, §2.2, §2.3). Client events whose shape is the same in both
(append, truncate, cancel, response.create with instructions) are built once.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.config import Agent, Dialect, TurnDetection

_APPEND_HEAD = b'{"type":"input_audio_buffer.append","audio":'


def append(payload: str) -> bytes:
    """The per-frame event: the carrier's base64 passed through, escaped by orjson."""
    return _APPEND_HEAD + orjson.dumps(payload) + b"}"


def truncate(item_id: str, content_index: int, audio_end_ms: int) -> bytes:
    return orjson.dumps({"type": "conversation.item.truncate", "item_id": item_id,
                         "content_index": content_index, "audio_end_ms": audio_end_ms})


def cancel(response_id: str | None) -> bytes:
    event: dict[str, Any] = {"type": "response.cancel"}
    if response_id:
        event["response_id"] = response_id
    return orjson.dumps(event)


def greet(text: str) -> bytes:
    return orjson.dumps({"type": "response.create", "response": {
        "instructions": f"Greet the caller by saying exactly this, then wait for them: {text}"}})


def restore_events(dialect: Dialect, turns: tuple[tuple[str, str], ...]) -> list[bytes]:
    """One `conversation.item.create` per turn, appended in order: caller turns as user `input_text`,
    answers as assistant text."""
    assistant_part = "output_text" if dialect == "ga" else "text"
    out = []
    for role, text in turns:
        part = {"type": "input_text" if role == "user" else assistant_part, "text": text}
        item = {"type": "message", "role": role, "content": [part]}
        out.append(orjson.dumps({"type": "conversation.item.create", "item": item}))
    return out


def _turn_detection(td: TurnDetection) -> dict[str, Any] | None:
    if td.mode == "none":
        return None
    if td.mode == "semantic_vad":
        return {"type": "semantic_vad", "eagerness": td.eagerness, "create_response": td.create_response,
                "interrupt_response": td.interrupt_response}
    return {"type": "server_vad", "threshold": td.threshold, "prefix_padding_ms": td.prefix_padding_ms,
            "silence_duration_ms": td.silence_duration_ms, "create_response": td.create_response,
            "interrupt_response": td.interrupt_response}


def _transcription(agent: Agent) -> dict[str, Any] | None:
    if not agent.transcription_model:
        return None
    out = {"model": agent.transcription_model}
    if agent.transcription_language:
        out["language"] = agent.transcription_language
    return out


def ga_session(agent: Agent) -> dict[str, Any]:
    audio_in: dict[str, Any] = {
        "format": {"type": "audio/pcmu"},
        "turn_detection": _turn_detection(agent.turn_detection),
        "transcription": _transcription(agent),
        "noise_reduction": {"type": agent.noise_reduction} if agent.noise_reduction else None,
    }
    session: dict[str, Any] = {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": agent.instructions,
        "audio": {"input": audio_in, "output": {"format": {"type": "audio/pcmu"}, "voice": agent.voice}},
    }
    return session  # no `model`: the URL names it, and Azure's deployment name need not be a model id


def beta_session(agent: Agent) -> dict[str, Any]:
    return {
        "modalities": ["text", "audio"],
        "instructions": agent.instructions,
        "voice": agent.voice,
        "input_audio_format": "g711_ulaw",
        "output_audio_format": "g711_ulaw",
        "turn_detection": _turn_detection(agent.turn_detection),
        "input_audio_transcription": _transcription(agent),
        "input_audio_noise_reduction": {"type": agent.noise_reduction} if agent.noise_reduction else None,
    }


def session_update(dialect: Dialect, agent: Agent) -> bytes:
    session = ga_session(agent) if dialect == "ga" else beta_session(agent)
    return orjson.dumps({"type": "session.update", "session": session})
