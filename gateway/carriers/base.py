"""The carrier interface: everything the gateway needs from one carrier, behind one small class.

A carrier package (`carriers/twilio/`, ...) provides a `Carrier` subclass and registers it in
`carriers/registry.py`. The HTTP layer never names a carrier: it hands the carrier the webhook
request (verify, read the call, answer), the media handshake (verify) and the stream's frames (its
`StreamFace` decodes them into the core's carrier events and encodes the core's carrier actions), and
asks it for call control (fall back, hang up, transfer, send keys). What a carrier can do is declared in
its `Capabilities`, which the core reads instead of the carrier's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import orjson

from gateway.core.codec import PCMU, Codec
from gateway.core.events import (
    CarrierEvent,
    ClearPlayback,
    PlayAudio,
    ProtocolViolation,
    SendDigits,
    SendMark,
    StreamStart,
)
from gateway.env import Env, Secret

DTMF_STREAM = "stream"  # Capabilities.send_dtmf: the stream face encodes SendDigits into a frame of the stream
DTMF_CALL_CONTROL = "call_control"  # ... or `Carrier.send_dtmf` sends them through the carrier's REST API


@dataclass(frozen=True)
class Capabilities:
    marks: bool = True  # echoes a mark once the audio sent before it has played
    binary_audio: bool = False  # audio travels in binary WebSocket frames (else JSON text frames)
    codecs: tuple[Codec, ...] = (PCMU,)  # what its streams can carry, preferred first
    # Audio to the carrier goes in frames of exactly this many ms (0: any size). Such a face holds back
    # a partial frame until more audio comes, and sends it padded at the mark that ends an answer
    # (`SendMark.last`); it encodes into `Frames`.
    frame_ms: int = 0
    # How keys reach the far end without ending the stream (the send_dtmf tool is offered only then):
    # DTMF_STREAM, DTMF_CALL_CONTROL, or "" (not at all).
    send_dtmf: str = ""

    def __post_init__(self) -> None:
        if self.send_dtmf not in ("", DTMF_STREAM, DTMF_CALL_CONTROL):
            raise ValueError(f"send_dtmf must be '', {DTMF_STREAM!r} or {DTMF_CALL_CONTROL!r}")
        if self.frame_ms and not self.marks:
            raise ValueError("a carrier that cuts audio into fixed frames needs marks: the mark that ends an "
                             "answer (SendMark.last) is what flushes its held partial frame")


@dataclass(frozen=True)
class Fallback:
    """What the caller gets when the agent cannot answer: a spoken apology, or a transfer to a number."""

    message: str
    number: str | None = None  # E.164: dial this number instead of apologising


@dataclass(frozen=True)
class ControlDocument:
    """Markup a carrier fetches to move a live call, for carriers that take no inline markup (Plivo moves
    a call only to XML at a URL). The gateway serves it at a signed URL (`Carrier.document_url`)."""

    kind: str  # "fallback" (the apology, or the fallback number) | "transfer"
    call_id: str
    target: str | None = None  # transfer: an E.164 number or a SIP URI


DocumentUrl = Callable[[ControlDocument], str]


@dataclass(frozen=True)
class WebhookRequest:
    """A carrier's webhook as the gateway received it, carrier-neutral."""

    method: str
    url: str  # the public URL the carrier called (scheme, host, path and query), as it signs it
    headers: Mapping[str, str]
    form: Mapping[str, str]  # the form fields of a form-encoded POST (empty otherwise)
    query: Mapping[str, str]
    body: bytes = b""  # the raw body, for carriers that sign it or send JSON


@dataclass(frozen=True)
class InboundCall:
    """The call a webhook asks about, read and checked by its carrier."""

    call_id: str
    account_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    direction: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    """The webhook's answer in the carrier's own markup."""

    body: str
    content_type: str


class WebhookRefused(Exception):
    """The webhook does not describe a call we can answer. `label` is bounded; the message is for the
    HTTP answer and the log, and never holds a secret."""

    def __init__(self, label: str, message: str) -> None:
        super().__init__(message)
        self.label = label


class CallControlUnavailable(Exception):
    """A call-control action cannot be attempted (no credentials, or ids that are not the carrier's)."""


@dataclass(frozen=True)
class PlaceCall:
    """A call for the carrier to place (`Carrier.place_call`): once answered, its audio is connected to
    `stream_url` with `parameters` handed back in the stream's start, like an inbound call's."""

    to: str  # E.164
    from_number: str  # E.164: the caller id
    stream_url: str  # wss://.../media/<carrier>
    parameters: Mapping[str, str]  # the stream token among them
    status_url: str  # the carrier posts the call's progress here (signed like its webhooks)
    ring_timeout_s: int
    machine_detection: bool = False  # answering-machine detection, in the background (async)
    amd_url: str | None = None  # where the carrier posts who answered (with machine_detection)


@dataclass(frozen=True)
class CallProgress:
    """A status callback read by its carrier, carrier-neutral. `status` is one of CALL_STATUSES;
    `answered_by` (answering-machine detection) is human, machine or unknown."""

    call_id: str
    status: str | None = None
    duration_s: int | None = None  # on the final statuses: how long the call was connected
    answered_by: str | None = None
    answered_by_detail: str | None = None  # the carrier's own word for it (e.g. machine_end_beep), bounded
    sequence: int | None = None  # callbacks may arrive out of order


CALL_STATUSES = ("queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer", "failed",
                 "canceled")
FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


def json_object(data: bytes | str) -> dict[str, Any] | ProtocolViolation:
    """A carrier's JSON text frame as an object, or the violation it is (for the carriers that speak
    JSON; the stream faces call it first for every frame)."""
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ProtocolViolation("invalid_json", "frame is not JSON")
    if type(frame) is not dict:
        return ProtocolViolation("invalid_frame", "frame is not a JSON object")
    return frame


Frames = list[tuple[bytes, bool]]  # (data, binary) pairs, from a face that writes several frames at once


class StreamFace(Protocol):
    """Decodes the frames of one media stream and encodes the core's carrier actions into frames."""

    def decode(self, data: bytes | str) -> CarrierEvent:
        """A text frame."""

    def decode_binary(self, data: bytes) -> CarrierEvent:
        """A binary frame."""

    def encode(self, action: PlayAudio | SendMark | ClearPlayback | SendDigits) -> bytes | Frames:
        """The frame to write: `bytes` is one frame (audio in a binary frame when
        `Capabilities.binary_audio`, everything else in a text frame). A face that must cut or hold
        audio (fixed-size binary frames) returns `Frames` instead: zero or more frames, each saying
        whether it is binary, written in order. `SendDigits` only for a carrier whose keys travel on
        the stream (`Capabilities.send_dtmf == DTMF_STREAM`); any other face raises TypeError."""


class Carrier(ABC):
    """One carrier: webhook, media stream and call control. Built once per process from its settings."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    # The signed public URL of a control document (see ControlDocument); set by the app when the
    # gateway knows its public URL (PUBLIC_URL). Only carriers that fetch markup for call control use it.
    document_url: DocumentUrl | None = None

    @abstractmethod
    def __init__(self, settings: Any) -> None:
        """Built from what `load_settings` returned."""

    @classmethod
    @abstractmethod
    def load_settings(cls, env: Env) -> Any:
        """Read and validate this carrier's settings (ConfigError names the variable)."""

    @staticmethod
    def secrets_of(settings: Any) -> list[Secret]:
        """Every secret in this carrier's settings, for log redaction."""
        return []

    # --- the webhook -------------------------------------------------------------------------------

    @property
    @abstractmethod
    def signs_webhooks(self) -> bool:
        """True when webhooks are verified (the carrier's signing secret is configured)."""

    @abstractmethod
    def verify_webhook(self, request: WebhookRequest) -> bool:
        """The request really comes from the carrier (True when signing is not configured)."""

    @abstractmethod
    def inbound_call(self, request: WebhookRequest) -> InboundCall:
        """The call this webhook is about; raises WebhookRefused when its ids are missing or malformed."""

    @abstractmethod
    def answer(self, call: InboundCall, stream_url: str, parameters: dict[str, str]) -> Answer:
        """Connect the call's audio to `stream_url`, handing `parameters` back in the stream's start."""

    @abstractmethod
    def busy(self, message: str) -> Answer:
        """Say `message` and hang up: the gateway takes no more calls now."""

    # --- the media stream --------------------------------------------------------------------------

    @abstractmethod
    def verify_handshake(self, stream_url: str, headers: Mapping[str, str]) -> bool:
        """The media WebSocket handshake comes from the carrier (True where it does not sign it)."""

    @abstractmethod
    def stream_face(self) -> StreamFace:
        """A new face for one media stream."""

    @property
    def answer_codec(self) -> Codec:
        """The codec its streams will carry, as its webhook answers ask for it (a warm session is configured
        for it before the stream says so): the preferred one, unless the carrier's settings choose."""
        return self.capabilities.codecs[0]

    # --- call control ------------------------------------------------------------------------------

    @abstractmethod
    async def fall_back(self, start: StreamStart, fallback: Fallback) -> None:
        """Hand the live call to the fallback before its stream is closed. Raises
        CallControlUnavailable when it cannot be attempted, or the transport's error when it fails."""

    @abstractmethod
    async def hang_up(self, start: StreamStart) -> None:
        """End the live call."""

    @abstractmethod
    async def transfer(self, start: StreamStart, target: str) -> None:
        """Move the live call to `target` (an E.164 number or a SIP URI)."""

    async def send_dtmf(self, start: StreamStart, digits: str) -> None:
        """Play keys to the far end of the live call without ending its stream, for a carrier with
        `Capabilities.send_dtmf == DTMF_CALL_CONTROL`. Raises CallControlUnavailable when it cannot."""
        raise CallControlUnavailable(f"{self.name} cannot send keys without ending the media stream")

    async def say_and_hang_up(self, start: StreamStart, text: str) -> None:
        """Have the carrier say `text` on the live call, then hang up (a voicemail message left as it is):
        the fallback's apology with another text, for every carrier whose fallback says one."""
        await self.fall_back(start, Fallback(text))

    # --- calls the gateway places ------------------------------------------------------------------

    async def place_call(self, request: PlaceCall) -> str:
        """Place the call; returns the carrier's id of it (the CallSid). Raises CallControlUnavailable
        when it cannot be attempted (say which variables are missing), or the transport's error."""
        raise CallControlUnavailable(f"{self.name} cannot place calls yet")

    async def cancel_call(self, call_id: str, *, answered: bool) -> None:
        """End a call placed by `place_call` that has no media stream here: still ringing (`answered`
        False: cancel it) or answered (hang it up)."""
        raise CallControlUnavailable(f"{self.name} cannot end calls it placed")

    def call_progress(self, request: WebhookRequest) -> CallProgress:
        """A status or answering-machine callback of a call placed by `place_call` (already verified with
        `verify_webhook`); raises WebhookRefused when it names no call."""
        raise WebhookRefused("not_found", f"{self.name} sends no status callbacks to this gateway")

    def control_document(self, document: ControlDocument, fallback: Fallback) -> Answer:
        """The markup of a control document. Carriers that take inline markup serve none: refused."""
        raise WebhookRefused("not_found", f"{self.name} moves live calls with inline markup; it fetches no documents")

    async def close(self) -> None:  # noqa: B027 - most carriers hold nothing to release
        """Release what the carrier holds for the process (HTTP sessions)."""
