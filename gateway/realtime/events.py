"""Server event names of both Realtime dialects, mapped to the core's neutral kinds.

GA and beta differ in a few names (protocol-reference.md §2.3); accepting both in one table costs
nothing and keeps a mis-configured dialect from silently dropping audio.
"""

from __future__ import annotations

from gateway.core import events as ev

SERVER_EVENT_KINDS: dict[str, str] = {
    "session.created": ev.UP_SESSION_CREATED,
    "session.updated": ev.UP_SESSION_UPDATED,
    "input_audio_buffer.speech_started": ev.UP_SPEECH_STARTED,
    "input_audio_buffer.speech_stopped": ev.UP_SPEECH_STOPPED,
    "response.created": ev.UP_RESPONSE_CREATED,
    "response.done": ev.UP_RESPONSE_DONE,
    "response.output_audio.delta": ev.UP_AUDIO_DELTA,  # GA
    "response.audio.delta": ev.UP_AUDIO_DELTA,  # beta
    "response.output_audio.done": ev.UP_AUDIO_DONE,
    "response.audio.done": ev.UP_AUDIO_DONE,
    "response.output_audio_transcript.done": ev.UP_OUTPUT_TRANSCRIPT_DONE,
    "response.audio_transcript.done": ev.UP_OUTPUT_TRANSCRIPT_DONE,
    "conversation.item.input_audio_transcription.completed": ev.UP_INPUT_TRANSCRIPT_DONE,
    "conversation.item.input_audio_transcription.failed": ev.UP_INPUT_TRANSCRIPT_FAILED,
    "conversation.item.truncated": ev.UP_ITEM_TRUNCATED,
    "error": ev.UP_ERROR,
    # what the conversation log keeps, to carry a conversation over to a new session
    "response.output_item.added": ev.UP_OUTPUT_ITEM_ADDED,
    "response.output_audio_transcript.delta": ev.UP_OUTPUT_TRANSCRIPT_DELTA,
    "response.audio_transcript.delta": ev.UP_OUTPUT_TRANSCRIPT_DELTA,
}


def kind_of(event_type: object) -> str:
    return SERVER_EVENT_KINDS.get(event_type, ev.UP_OTHER) if isinstance(event_type, str) else ev.UP_OTHER
