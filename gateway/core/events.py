"""The neutral vocabulary between the faces and the core.

Carrier faces turn their frames into carrier events and the core's carrier actions into frames; the
Realtime face turns dialect event names into the upstream kinds below and the core's upstream actions
into dialect events. Nothing here knows Twilio or a Realtime dialect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# --- carrier events (kind, data) as decoded by a carrier face ------------------------------------

CARRIER_AUDIO = "audio"  # data: the base64 μ-law payload, untouched
CARRIER_START = "start"  # data: CarrierStart
CARRIER_MARK = "mark"  # data: the mark name
CARRIER_DTMF = "dtmf"  # data: the digit
CARRIER_STOP = "stop"  # data: None
CARRIER_CONNECTED = "connected"  # data: None (protocol preamble)
CARRIER_INVALID = "invalid"  # data: ProtocolViolation


@dataclass(frozen=True, slots=True)
class CarrierStart:
    stream_id: str
    call_id: str
    account_id: str | None
    parameters: dict[str, str]
    encoding: str
    sample_rate: int


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """A carrier frame we could not use; `kind` is a bounded label for metrics."""

    kind: str
    detail: str


# --- upstream event kinds, normalised from either Realtime dialect -------------------------------

UP_SESSION_CREATED = "session.created"
UP_SESSION_UPDATED = "session.updated"
UP_SPEECH_STARTED = "speech_started"
UP_SPEECH_STOPPED = "speech_stopped"
UP_RESPONSE_CREATED = "response.created"
UP_RESPONSE_DONE = "response.done"
UP_AUDIO_DELTA = "audio.delta"
UP_AUDIO_DONE = "audio.done"
UP_OUTPUT_TRANSCRIPT_DONE = "output_transcript.done"
UP_INPUT_TRANSCRIPT_DONE = "input_transcript.done"
UP_INPUT_TRANSCRIPT_FAILED = "input_transcript.failed"
UP_ITEM_TRUNCATED = "item.truncated"
UP_ERROR = "error"
UP_OTHER = "other"
# Only needed to keep the conversation log that a reconnect replays.
UP_OUTPUT_ITEM_ADDED = "output_item.added"
UP_OUTPUT_TRANSCRIPT_DELTA = "output_transcript.delta"


# --- actions the core asks for --------------------------------------------------------------------


@dataclass(slots=True)  # not frozen: built per frame, and frozen construction costs twice as much
class PlayAudio:
    """Carrier: play this base64 audio (passed through as received)."""

    payload: str


@dataclass(slots=True)  # not frozen: built per frame, and frozen construction costs twice as much
class SendMark:
    """Carrier: echo this name back when the audio sent before it has played."""

    name: str


@dataclass(frozen=True, slots=True)
class ClearPlayback:
    """Carrier: drop all queued audio now (barge-in)."""


@dataclass(slots=True)  # not frozen: built per frame, and frozen construction costs twice as much
class AppendAudio:
    """Upstream: append caller audio (base64, passed through as received)."""

    payload: str


@dataclass(frozen=True, slots=True)
class ConfigureSession:
    """Upstream: send the session configuration."""


@dataclass(frozen=True, slots=True)
class Greet:
    """Upstream: make the agent speak first with this greeting."""

    text: str


@dataclass(frozen=True, slots=True)
class CancelResponse:
    response_id: str | None


@dataclass(frozen=True, slots=True)
class TruncateItem:
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Upstream: the session is lost (or due for renewal); open a new one. Caller audio waits meanwhile."""

    reason: str  # bounded: closed, server_error, session_expired, stalled, recycle
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RestoreConversation:
    """Upstream (a new session): recreate the conversation so far as text items, oldest first."""

    turns: tuple[tuple[str, str], ...]  # (role: "user" | "assistant", text)


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call: close the carrier socket (and so the upstream session)."""

    outcome: str  # bounded: completed, rejected, upstream_error, carrier_error, timeout, drained
    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth a log line, with the call's context added by the I/O layer."""

    event: str
    level: str = "info"
    fields: dict[str, Any] = field(default_factory=dict)


Action = (
    PlayAudio | SendMark | ClearPlayback | AppendAudio | ConfigureSession | Greet | CancelResponse
    | TruncateItem | Hangup | Note | Reconnect | RestoreConversation
)
