"""The Realtime face of one call: server frames in, typed events out; the core's actions in, frames out.

Built for one dialect (GA, the default, or beta), one agent, the stream's codec and whether the call's
carrier can send keys (the send_dtmf tool is offered only then). Decoding accepts
both dialects' event names (protocol-reference.md §2.3): one table costs nothing, and a mis-configured
dialect then still plays audio instead of dropping it silently. Everything the core needs is read
here, and only here: field layouts, usage details, error codes and messages. The audio payloads are
never decoded: the base64 string of a delta is the string the carrier gets, and back.

A function call is decoded from `response.function_call_arguments.done` and again from the
`response.output_item.done` of its item (some servers send only the latter; the core runs a call id
once). Beta's arguments event has no `name`: the face remembers it from the item's
`response.output_item.added`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway.config import Agent, Dialect
from gateway.core.codec import PCMU, Codec
from gateway.core.events import (
    Action,
    AppendAudio,
    AudioDelta,
    AudioDone,
    CancelResponse,
    CommitInput,
    ConfigureSession,
    Greet,
    Inform,
    ItemAdded,
    ItemTruncated,
    RequestResponse,
    ResponseCreated,
    ResponseDone,
    RestoreConversation,
    Say,
    SendToolOutput,
    SendUserText,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    ToolCall,
    TranscriptDelta,
    TranscriptDone,
    TranscriptFailed,
    TruncateItem,
    UpstreamEvent,
    UpstreamIgnored,
    UpstreamUnreadable,
)
from gateway.realtime import dialect as shapes
from gateway.realtime.errors import classify

_APPEND_HEAD = shapes.APPEND_HEAD
MAX_NAMES_KEPT = 64  # function-call item ids whose name a beta arguments event may need


def _str(value: Any) -> str | None:
    return value if type(value) is str else None


def _obj(value: Any) -> dict[str, Any]:
    return value if type(value) is dict else {}


def parse_usage(usage: Any) -> dict[str, int] | None:
    """`response.usage` as tokens by kind (core.stats.TOKEN_KINDS); None when absent."""
    if type(usage) is not dict:
        return None
    inp, out = _obj(usage.get("input_token_details")), _obj(usage.get("output_token_details"))
    cached = _obj(inp.get("cached_tokens_details"))
    pairs = (("input_text", inp.get("text_tokens")), ("input_audio", inp.get("audio_tokens")),
             ("input_cached", inp.get("cached_tokens")), ("input_cached_audio", cached.get("audio_tokens")),
             ("output_text", out.get("text_tokens")),
             ("output_audio", out.get("audio_tokens")))
    return {kind: value for kind, value in pairs if type(value) is int and value > 0}


def _delta(e: dict[str, Any]) -> UpstreamEvent | None:
    payload, item_id = e.get("delta"), e.get("item_id")
    if type(payload) is not str or type(item_id) is not str:
        return None
    index = e.get("content_index", 0)
    return AudioDelta(_str(e.get("response_id")), item_id, index if type(index) is int else 0, payload)


def _speech_stopped(e: dict[str, Any]) -> UpstreamEvent:
    end = e.get("audio_end_ms")
    return SpeechStopped(end if type(end) in (int, float) else None)


def _response_done(e: dict[str, Any]) -> UpstreamEvent:
    r = _obj(e.get("response"))
    details = r.get("status_details")
    return ResponseDone(_str(r.get("id")), str(r.get("status") or "unknown"), parse_usage(r.get("usage")),
                        details if type(details) is dict else None)


def _truncated(e: dict[str, Any]) -> UpstreamEvent:
    end = e.get("audio_end_ms")
    return ItemTruncated(_str(e.get("item_id")), end if type(end) is int else None)


def _transcript(role: str) -> Callable[[dict[str, Any]], UpstreamEvent]:
    return lambda e: TranscriptDone(role, _str(e.get("item_id")), _str(e.get("transcript")) or "")


def _transcript_delta(e: dict[str, Any]) -> UpstreamEvent | None:
    text = e.get("delta")
    return TranscriptDelta(_str(e.get("item_id")), text) if type(text) is str else None


_DECODERS: dict[str, Callable[[dict[str, Any]], UpstreamEvent | None]] = {
    "response.output_audio.delta": _delta,  # GA
    "response.audio.delta": _delta,  # beta
    "input_audio_buffer.speech_started": lambda e: SpeechStarted(_str(e.get("item_id"))),
    "input_audio_buffer.speech_stopped": _speech_stopped,
    "response.created": lambda e: ResponseCreated(_str(_obj(e.get("response")).get("id"))),
    "response.done": _response_done,
    "response.output_audio.done": lambda e: AudioDone(_str(e.get("item_id"))),
    "response.audio.done": lambda e: AudioDone(_str(e.get("item_id"))),
    "response.output_audio_transcript.done": _transcript("assistant"),
    "response.audio_transcript.done": _transcript("assistant"),
    "response.output_audio_transcript.delta": _transcript_delta,
    "response.audio_transcript.delta": _transcript_delta,
    "conversation.item.input_audio_transcription.completed": _transcript("user"),
    "conversation.item.input_audio_transcription.failed":
        lambda e: TranscriptFailed(_str(e.get("item_id")), e.get("error")),
    "conversation.item.truncated": _truncated,
    "session.created": lambda e: SessionCreated(_str(_obj(e.get("session")).get("id"))),
    "session.updated": lambda e: SessionUpdated(_str(_obj(e.get("session")).get("id"))),
    "error": lambda e: classify(e.get("error")),
}


class RealtimeFace:
    """Decodes the server events of one Realtime session and encodes the core's upstream actions."""

    def __init__(self, dialect: Dialect, agent: Agent, codec: Codec = PCMU, *, send_dtmf: bool = False) -> None:
        self.dialect = dialect
        self.agent = agent
        self.codec = codec
        self.audio_format = shapes.audio_format(dialect, codec)  # raises ValueError for a codec it cannot take
        self._call_names: dict[str, str] = {}  # function-call item id -> name, from output_item.added
        self._decoders = {**_DECODERS, "response.output_item.added": self._item_added,
                          "response.function_call_arguments.done": self._arguments_done,
                          "response.output_item.done": self._item_done}
        self._encoders: dict[type, Callable[[Any], bytes | tuple[bytes, ...]]] = {
            TruncateItem: lambda a: shapes.truncate(a.item_id, a.content_index, a.audio_end_ms),
            CancelResponse: lambda a: shapes.cancel(a.response_id),
            ConfigureSession: lambda a: shapes.session_update(dialect, agent, codec, send_dtmf=send_dtmf),
            Greet: lambda a: shapes.greet(a.text),
            RestoreConversation: lambda a: tuple(shapes.restore_events(dialect, a.turns)),
            SendToolOutput: lambda a: shapes.function_output(a.call_id, a.output),
            RequestResponse: self._request_response,
            SendUserText: lambda a: shapes.user_text(a.text),
            CommitInput: lambda a: shapes.COMMIT,
            Say: lambda a: shapes.say(a.text),
            Inform: lambda a: shapes.system_message(a.text),
        }

    def _request_response(self, action: RequestResponse) -> bytes:
        """A plain response.create, or one whose instructions add the action's to the agent's own (the
        agent's voice, language and manner carry over to an idle check-in or goodbye)."""
        if action.instructions is None:
            return shapes.RESPONSE_CREATE
        return shapes.respond(f"{self.agent.instructions}\n\n{action.instructions}", action.purpose)

    # --- function calls ------------------------------------------------------------------------

    def _item_added(self, e: dict[str, Any]) -> UpstreamEvent:
        item = _obj(e.get("item"))
        item_id, name = _str(item.get("id")), _str(item.get("name"))
        if item.get("type") == "function_call" and item_id and name:
            if len(self._call_names) >= MAX_NAMES_KEPT:
                self._call_names.clear()
            self._call_names[item_id] = name
        return ItemAdded(item_id, _str(item.get("role")))

    def _arguments_done(self, e: dict[str, Any]) -> UpstreamEvent | None:
        call_id, arguments, item_id = _str(e.get("call_id")), e.get("arguments"), _str(e.get("item_id"))
        if not call_id or type(arguments) is not str:
            return None
        name = _str(e.get("name")) or (self._call_names.get(item_id, "") if item_id else "")
        return ToolCall(call_id, name, arguments, item_id, _str(e.get("response_id")))

    def _item_done(self, e: dict[str, Any]) -> UpstreamEvent | None:
        item = _obj(e.get("item"))
        if item.get("type") != "function_call":
            return UpstreamIgnored("response.output_item.done")
        call_id, arguments = _str(item.get("call_id")), item.get("arguments")
        if not call_id or type(arguments) is not str:
            return None
        item_id = _str(item.get("id"))
        name = _str(item.get("name")) or (self._call_names.get(item_id, "") if item_id else "")
        return ToolCall(call_id, name, arguments, item_id, _str(e.get("response_id")))

    # --- frames --------------------------------------------------------------------------------

    def decode(self, raw: bytes | str) -> UpstreamEvent:
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return UpstreamUnreadable("invalid_json", None, len(raw))
        if type(event) is not dict:
            return UpstreamUnreadable("invalid_json", None, len(raw))
        event_type = event.get("type")
        decoder = self._decoders.get(event_type) if type(event_type) is str else None
        if decoder is None:
            return UpstreamIgnored(_str(event_type))
        decoded = decoder(event)
        return decoded if decoded is not None else UpstreamUnreadable("malformed_event", event_type, len(raw))

    def encode(self, action: Action) -> bytes | tuple[bytes, ...]:
        """The frame (or, for a restored conversation, the frames in order) for an upstream action."""
        if type(action) is AppendAudio:  # the per-frame one: the carrier's base64, escaped by orjson
            return _APPEND_HEAD + orjson.dumps(action.payload) + b"}"
        return self._encoders[type(action)](action)
