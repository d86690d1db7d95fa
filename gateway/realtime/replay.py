"""Carrying a conversation over to a new Realtime session (after a reconnect or a session renewal).

The server events the conversation log needs beyond the core's kinds, and the client events that
recreate the conversation as text items in either dialect (protocol-reference.md §1.3 item shapes;
§2.3: an assistant's text part is `output_text` in GA, `text` in beta).
"""

from __future__ import annotations

import orjson

from gateway.config import Dialect
from gateway.core import events as ev

CONVERSATION_EVENT_KINDS: dict[str, str] = {
    "response.output_item.added": ev.UP_OUTPUT_ITEM_ADDED,
    "response.output_audio_transcript.delta": ev.UP_OUTPUT_TRANSCRIPT_DELTA,  # GA
    "response.audio_transcript.delta": ev.UP_OUTPUT_TRANSCRIPT_DELTA,  # beta
}


def conversation_kind(event_type: object) -> str:
    """For events `realtime.events.kind_of` calls other: the kinds only the conversation log uses."""
    return CONVERSATION_EVENT_KINDS.get(event_type, ev.UP_OTHER) if isinstance(event_type, str) else ev.UP_OTHER


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
