"""The two shapes of the Realtime protocol the gateway speaks: GA (default) and beta.

Only what differs lives here: the `session.update` body. GA rejects a whole update that carries one
unknown field, so each dialect builds its own from the agent settings and nothing is shared by
accident (protocol-reference.md §1.2, §2.2, §2.3). Client events whose shape is the same in both
(append, truncate, cancel, response.create with instructions, function_call_output items) are built
once. Tools: both dialects get the function tools (`{type: function, name, description, parameters}`;
send_dtmf only when the call's carrier can send keys); only GA gets the MCP servers (`{type: mcp, ...}`: the
config refuses them with a beta upstream). No session sets GA server_vad's `idle_timeout_ms`: silence is
timed in the core (`core.idle` says why).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.config import Agent, Dialect, TurnDetection
from gateway.core.codec import PCMU, Codec
from gateway.env import Secret
from gateway.tools.spec import McpServer, ToolsSpec

APPEND_HEAD = b'{"type":"input_audio_buffer.append","audio":'
RESPONSE_CREATE = b'{"type":"response.create"}'
COMMIT = b'{"type":"input_audio_buffer.commit"}'


def append(payload: str) -> bytes:
    """The per-frame event: the carrier's base64 passed through, escaped by orjson."""
    return APPEND_HEAD + orjson.dumps(payload) + b"}"


def audio_format(dialect: Dialect, codec: Codec) -> dict[str, Any] | str:
    """How the session names the stream's codec: G.711 passes through as it is; linear PCM only at the
    24 kHz the Realtime API takes. Raises ValueError for anything else."""
    if codec.name in ("pcmu", "pcma") and codec.sample_rate == 8000:
        if dialect == "ga":
            return {"type": f"audio/{codec.name}"}
        return "g711_ulaw" if codec.name == "pcmu" else "g711_alaw"
    if codec.name == "l16" and codec.sample_rate == 24000:
        return {"type": "audio/pcm", "rate": 24000} if dialect == "ga" else "pcm16"
    raise ValueError(f"the Realtime API does not take {codec.name} at {codec.sample_rate} Hz "
                     "(G.711 μ-law or A-law at 8 kHz, or 16-bit PCM at 24 kHz)")


def truncate(item_id: str, content_index: int, audio_end_ms: int) -> bytes:
    return orjson.dumps({"type": "conversation.item.truncate", "item_id": item_id,
                         "content_index": content_index, "audio_end_ms": audio_end_ms})


def cancel(response_id: str | None) -> bytes:
    event: dict[str, Any] = {"type": "response.cancel"}
    if response_id:
        event["response_id"] = response_id
    return orjson.dumps(event)


def greet(text: str) -> bytes:
    return respond(f"Greet the caller by saying exactly this, then wait for them: {text}", "greeting")


def say(text: str) -> bytes:
    return orjson.dumps({"type": "response.create", "response": {
        "instructions": f"Say exactly this to the caller, and nothing else: {text}"}})


def respond(instructions: str, purpose: str | None = None) -> bytes:
    """A response with these instructions (for it only), and its purpose as metadata when given."""
    response: dict[str, Any] = {"instructions": instructions}
    if purpose:
        response["metadata"] = {"purpose": purpose}
    return orjson.dumps({"type": "response.create", "response": response})


def user_text(text: str) -> bytes:
    """A user message of text (keypad input), appended to the conversation."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return orjson.dumps({"type": "conversation.item.create", "item": item})


def function_output(call_id: str, output: str) -> bytes:
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return orjson.dumps({"type": "conversation.item.create", "item": item})


def system_message(text: str) -> bytes:
    item = {"type": "message", "role": "system", "content": [{"type": "input_text", "text": text}]}
    return orjson.dumps({"type": "conversation.item.create", "item": item})


def restore_events(dialect: Dialect, turns: tuple[tuple[str, ...], ...]) -> list[bytes]:
    """One `conversation.item.create` per turn, appended in order: caller turns as user `input_text`,
    answers as assistant text, function calls and their outputs as the items they were."""
    assistant_part = "output_text" if dialect == "ga" else "text"
    out = []
    for turn in turns:
        role = turn[0]
        if role == "function_call":
            item: dict[str, Any] = {"type": "function_call", "call_id": turn[1], "name": turn[2], "arguments": turn[3]}
        elif role == "function_call_output":
            item = {"type": "function_call_output", "call_id": turn[1], "output": turn[2]}
        else:
            part = {"type": "input_text" if role == "user" else assistant_part, "text": turn[1]}
            item = {"type": "message", "role": role, "content": [part]}
        out.append(orjson.dumps({"type": "conversation.item.create", "item": item}))
    return out


def _headers(headers: tuple[tuple[str, Secret | str], ...]) -> dict[str, str]:
    return {name: value.reveal() if isinstance(value, Secret) else value for name, value in headers}


def _mcp(server: McpServer) -> dict[str, Any]:
    tool: dict[str, Any] = {"type": "mcp", "server_label": server.label, "server_url": server.url,
                            "require_approval": "never"}
    if server.headers:
        tool["headers"] = _headers(server.headers)  # sent to the Realtime API, which calls the server
    if server.allowed_tools is not None:
        tool["allowed_tools"] = list(server.allowed_tools)
    if server.description:
        tool["server_description"] = server.description
    return tool


def tools(dialect: Dialect, spec: ToolsSpec, *, send_dtmf: bool = False) -> list[dict[str, Any]]:
    """The session's `tools`: every function (send_dtmf only when the carrier can send keys), and (GA) the
    MCP servers."""
    out: list[dict[str, Any]] = [{"type": "function", "name": f.name, "description": f.description,
                                  "parameters": f.parameters} for f in spec.functions(send_dtmf=send_dtmf)]
    if dialect == "ga":
        out += [_mcp(server) for server in spec.mcp]
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


def ga_session(agent: Agent, codec: Codec = PCMU, *, send_dtmf: bool = False) -> dict[str, Any]:
    fmt = audio_format("ga", codec)
    audio_in: dict[str, Any] = {
        "format": fmt,
        "turn_detection": _turn_detection(agent.turn_detection),
        "transcription": _transcription(agent),
        "noise_reduction": {"type": agent.noise_reduction} if agent.noise_reduction else None,
    }
    session: dict[str, Any] = {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": agent.instructions,
        "audio": {"input": audio_in, "output": {"format": fmt, "voice": agent.voice}},
    }
    prompt = agent.prompt
    if prompt is not None:  # a stored prompt: its instructions apply unless the agent adds its own
        session["prompt"] = {"id": prompt.id, **({"version": prompt.version} if prompt.version else {}),
                             **({"variables": dict(prompt.variables)} if prompt.variables else {})}
        if not agent.instructions:
            del session["instructions"]
    functions = tools("ga", agent.tools, send_dtmf=send_dtmf) if agent.tools else []
    if functions:
        session["tools"], session["tool_choice"] = functions, "auto"
    return session  # no `model`: the URL names it, and Azure's deployment name need not be a model id


def beta_session(agent: Agent, codec: Codec = PCMU, *, send_dtmf: bool = False) -> dict[str, Any]:
    fmt = audio_format("beta", codec)
    session = {
        "modalities": ["text", "audio"],
        "instructions": agent.instructions,
        "voice": agent.voice,
        "input_audio_format": fmt,
        "output_audio_format": fmt,
        "turn_detection": _turn_detection(agent.turn_detection),
        "input_audio_transcription": _transcription(agent),
        "input_audio_noise_reduction": {"type": agent.noise_reduction} if agent.noise_reduction else None,
    }
    functions = tools("beta", agent.tools, send_dtmf=send_dtmf) if agent.tools else []
    if functions:
        session["tools"], session["tool_choice"] = functions, "auto"
    return session


def session_update(dialect: Dialect, agent: Agent, codec: Codec = PCMU, *, send_dtmf: bool = False) -> bytes:
    """`send_dtmf`: the call's carrier can send keys, so the send_dtmf tool (when enabled) is offered."""
    if dialect == "ga":
        session = ga_session(agent, codec, send_dtmf=send_dtmf)
    else:
        session = beta_session(agent, codec, send_dtmf=send_dtmf)
    return orjson.dumps({"type": "session.update", "session": session})
