"""The neutral vocabulary between the faces and the core: typed events in, actions out.

A carrier's stream face decodes its frames into the carrier events below and encodes the carrier
actions into frames; the Realtime face does the same for one dialect with the upstream events and
actions. Nothing here knows Twilio, another carrier or a Realtime dialect: no wire field name, no
error code, no error message. Every class is slotted; the per-frame ones (`CallerAudio`,
`MarkPlayed`, `AudioDelta`, `PlayAudio`, `SendMark`, `AppendAudio`) are not frozen, because a frozen
dataclass costs twice as much to build and they are built 50 times a second per call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from gateway.core.codec import Codec
from gateway.core.results import EndCall as EndCall
from gateway.core.results import Listen as Listen
from gateway.core.results import ToolResult as ToolResult
from gateway.core.results import TransferTo as TransferTo

# --- carrier events, as decoded by a carrier's stream face ----------------------------------------


@dataclass(slots=True)
class CallerAudio:
    """Caller audio in the stream's codec, base64, untouched."""

    payload: str


@dataclass(slots=True)
class MarkPlayed:
    """The carrier played the audio sent before this mark (or flushed it on a clear; the core tells)."""

    name: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class StreamStart:
    """The stream's first real message: who the call is, what it carries, what the webhook attached."""

    stream_id: str
    call_id: str
    account_id: str | None
    parameters: dict[str, str]
    codec: Codec


@dataclass(frozen=True, slots=True)
class StreamStop:
    """The carrier ends the stream (the caller hung up, or the call moved on)."""


@dataclass(frozen=True, slots=True)
class StreamNoise:
    """A well-formed frame the gateway has no use for (a protocol preamble, an acknowledgement)."""

    kind: str


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """A carrier frame we could not use; `kind` is a bounded label for metrics."""

    kind: str
    detail: str


CarrierEvent = CallerAudio | MarkPlayed | Dtmf | StreamStart | StreamStop | StreamNoise | ProtocolViolation


# --- upstream events, as decoded by the Realtime face of one dialect ------------------------------


@dataclass(slots=True)
class AudioDelta:
    """A chunk of the answer's audio, base64 in the session's output codec, untouched."""

    response_id: str | None
    item_id: str
    content_index: int
    payload: str


@dataclass(frozen=True, slots=True)
class AudioDone:
    item_id: str | None


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The server heard the caller start speaking (barge-in, when the agent is talking)."""

    item_id: str | None


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The caller stopped; `audio_end_ms` is on the session's input timeline (None if not given)."""

    audio_end_ms: float | None


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    response_id: str | None


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """A response ended. `usage`: tokens by kind (see core.stats.TOKEN_KINDS), parsed by the face."""

    response_id: str | None
    status: str
    usage: dict[str, int] | None = None
    details: dict[str, Any] | None = None  # why it failed or was cut short, as the server said


@dataclass(frozen=True, slots=True)
class ItemAdded:
    """An output item of a response, with its role (an assistant message, a function call, ...)."""

    item_id: str | None
    role: str | None


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """A piece of the transcript of the assistant's spoken answer."""

    item_id: str | None
    text: str


@dataclass(frozen=True, slots=True)
class TranscriptDone:
    """A final transcript: of the assistant's answer (role "assistant") or of the caller (role "user")."""

    role: str
    item_id: str | None
    text: str


@dataclass(frozen=True, slots=True)
class TranscriptFailed:
    item_id: str | None
    error: Any


@dataclass(frozen=True, slots=True)
class ItemTruncated:
    item_id: str | None
    audio_end_ms: int | None


@dataclass(frozen=True, slots=True)
class SessionCreated:
    session_id: str | None


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """The server applied our session configuration: the session is ready."""

    session_id: str | None


# Error severities, decided by the face from the dialect's codes and types.
FATAL = "fatal"  # the session cannot go on and another would fail the same way (auth, quota, model)
RECOVERABLE = "recoverable"  # this session is lost; a new one can carry the call on
TRUNCATE_TOO_LONG = "truncate_too_long"  # our truncate was longer than the item's audio
BENIGN = "benign"  # an expected race (cancelling a finished response, ...): logged at info
WARNING = "warning"  # anything else: logged, counted, the call goes on


@dataclass(frozen=True, slots=True)
class UpstreamError:
    """An error event. `label` is a bounded name for metrics and reconnect reasons."""

    severity: str
    label: str
    code: str | None = None
    error_type: str | None = None
    message: str = ""
    param: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamUnreadable:
    """A frame that is not an event (not JSON, not an object), or an event missing what it must carry."""

    label: str  # bounded: invalid_json, malformed_event
    event_type: str | None
    size: int


@dataclass(frozen=True, slots=True)
class UpstreamIgnored:
    """An event the gateway has no use for."""

    event_type: str | None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model calls a function: `arguments` is the JSON text it wrote, unparsed (it may not be JSON)."""

    call_id: str
    name: str
    arguments: str
    item_id: str | None = None
    response_id: str | None = None


UpstreamEvent = (
    AudioDelta | AudioDone | SpeechStarted | SpeechStopped | ResponseCreated | ResponseDone | ItemAdded
    | TranscriptDelta | TranscriptDone | TranscriptFailed | ItemTruncated | SessionCreated | SessionUpdated
    | ToolCall | UpstreamError | UpstreamUnreadable | UpstreamIgnored
)


# --- actions the core asks for ---------------------------------------------------------------------
# `side` says who performs an action: the carrier's stream face encodes CARRIER actions, the Realtime
# face encodes UPSTREAM actions, and the socket owner performs CONTROL actions itself.

CARRIER = "carrier"
UPSTREAM = "upstream"
CONTROL = "control"


@dataclass(slots=True)
class PlayAudio:
    """Carrier: play this base64 audio (passed through as received)."""

    side: ClassVar[str] = CARRIER
    payload: str


@dataclass(slots=True)
class SendMark:
    """Carrier: echo this name back when the audio sent before it has played. `last` marks the end of
    an answer's audio: a face that holds back a partial frame (fixed-size frames) sends it now, padded,
    instead of waiting for more audio that will not come."""

    side: ClassVar[str] = CARRIER
    name: str
    last: bool = False


@dataclass(frozen=True, slots=True)
class ClearPlayback:
    """Carrier: drop all queued audio now (barge-in)."""

    side: ClassVar[str] = CARRIER


@dataclass(frozen=True, slots=True)
class SendDigits:
    """Carrier: play these keypad tones to the far end, for a carrier whose stream carries them
    (`Capabilities.send_dtmf == "stream"`); the send_dtmf tool asks for it, not the core."""

    side: ClassVar[str] = CARRIER
    digits: str


@dataclass(slots=True)
class AppendAudio:
    """Upstream: append caller audio (base64, passed through as received)."""

    side: ClassVar[str] = UPSTREAM
    payload: str


@dataclass(frozen=True, slots=True)
class ConfigureSession:
    """Upstream: send the session configuration."""

    side: ClassVar[str] = UPSTREAM


@dataclass(frozen=True, slots=True)
class Greet:
    """Upstream: make the agent speak first with this greeting."""

    side: ClassVar[str] = UPSTREAM
    text: str


@dataclass(frozen=True, slots=True)
class CancelResponse:
    side: ClassVar[str] = UPSTREAM
    response_id: str | None


@dataclass(frozen=True, slots=True)
class TruncateItem:
    side: ClassVar[str] = UPSTREAM
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class RestoreConversation:
    """Upstream (a new session): recreate the conversation so far as items, oldest first: ("user", text),
    ("assistant", text), ("function_call", call_id, name, arguments), ("function_call_output", call_id, output)."""

    side: ClassVar[str] = UPSTREAM
    turns: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class SendToolOutput:
    """Upstream: the output of the function call `call_id`, added to the conversation."""

    side: ClassVar[str] = UPSTREAM
    call_id: str
    output: str


@dataclass(frozen=True, slots=True)
class RequestResponse:
    """Upstream: ask the model to answer now (after a tool's output, keypad input, a committed turn). With
    `instructions`: added to the agent's own for this response only (an idle check-in, an idle goodbye);
    `purpose` (bounded: idle_reprompt, idle_goodbye) goes with it as the response's metadata."""

    side: ClassVar[str] = UPSTREAM
    instructions: str | None = None
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class SendUserText:
    """Upstream: add a user message of text to the conversation (keypad input, as its template words it)."""

    side: ClassVar[str] = UPSTREAM
    text: str


@dataclass(frozen=True, slots=True)
class CommitInput:
    """Upstream: end the caller's turn now (turn detection off): the audio so far becomes their message."""

    side: ClassVar[str] = UPSTREAM


@dataclass(frozen=True, slots=True)
class Say:
    """Upstream: have the agent say exactly this (a transfer's hand-off line)."""

    side: ClassVar[str] = UPSTREAM
    text: str


@dataclass(frozen=True, slots=True)
class Inform:
    """Upstream: tell the model something the caller does not hear (a system message item)."""

    side: ClassVar[str] = UPSTREAM
    text: str


@dataclass(frozen=True, slots=True)
class RunTool:
    """Control: run the function the model called (as a task), and report with `Call.tool_result`."""

    side: ClassVar[str] = CONTROL
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class TransferCall:
    """Control: move the live call to the allow-listed destination of this name through the carrier's
    call control, and report with `Call.transfer_result`."""

    side: ClassVar[str] = CONTROL
    destination: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    """The session is lost (or due for renewal): close it and open a new one after `delay_s`.
    Caller audio waits meanwhile."""

    side: ClassVar[str] = CONTROL
    reason: str  # bounded: closed, server_error, session_expired, stalled, recycle
    detail: str = ""
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Abort:
    """Drop the socket on `target` at once: its peer stopped reading its send buffer (a stall, counted
    by the I/O layer), so a polite close would wait too."""

    side: ClassVar[str] = CONTROL
    target: str  # CARRIER or UPSTREAM


@dataclass(frozen=True, slots=True)
class LeaveMessage:
    """End the call by having the carrier say `text` on the live call and hang up (its own text-to-speech,
    through its call control: a machine answered and the agent's voicemail is a fixed text); the stream is
    closed afterwards. Without that call control, the call is hung up."""

    side: ClassVar[str] = CONTROL
    text: str
    outcome: str  # voicemail
    reason: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call: close the carrier socket (and so the upstream session). With `fallback`, first
    hand the live call to the fallback (an apology, or a transfer) through the carrier's call control."""

    side: ClassVar[str] = CONTROL
    # bounded: completed, rejected, upstream_error, carrier_error, timeout, drained, agent_ended, idle, voicemail
    outcome: str
    reason: str
    fallback: bool = False
    carrier_hangup: bool = False  # end the live call through the carrier's call control, then close


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth a log line, with the call's context added by the I/O layer."""

    side: ClassVar[str] = CONTROL
    event: str
    level: str = "info"
    fields: dict[str, Any] = field(default_factory=dict)


Action = (
    PlayAudio | SendMark | ClearPlayback | SendDigits | AppendAudio | ConfigureSession | Greet | CancelResponse
    | TruncateItem | RestoreConversation | SendToolOutput | RequestResponse | SendUserText | CommitInput | Say
    | Inform | RunTool | TransferCall | Reconnect | Abort | LeaveMessage | Hangup | Note
)
