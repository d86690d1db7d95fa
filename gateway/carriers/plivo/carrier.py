"""Plivo behind the carrier interface: answer-URL webhooks, Audio Streams, Call API control.

Each method hands over to the module that knows the wire: `webhook` (Plivo XML, V3 signatures, ids),
`stream` (the audio stream's frames) and `rest` (the live call).

Call control: Plivo hangs a call up with one REST call (`DELETE .../Call/{uuid}/`), but moves it only
to XML fetched from a URL (`POST .../Call/{uuid}/` with `aleg_url`); it takes no inline XML. The gateway
serves no fallback or transfer document, so `fall_back` and `transfer` raise CallControlUnavailable:
the gateway then closes the stream, and as nothing follows the `<Stream>` in the answer, Plivo ends
the call (the caller hears no apology and is not transferred).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.carriers.base import (
    Answer,
    CallControlUnavailable,
    Capabilities,
    Carrier,
    Fallback,
    InboundCall,
    WebhookRefused,
    WebhookRequest,
)
from gateway.carriers.plivo import webhook
from gateway.carriers.plivo.rest import PlivoRest
from gateway.carriers.plivo.settings import PlivoSettings, load
from gateway.carriers.plivo.stream import PlivoStream
from gateway.core.codec import PCMU
from gateway.core.events import StreamStart
from gateway.env import Env, Secret

PLIVO_XML = "application/xml"
NO_DOCUMENT_URL = ("Plivo moves a live call only to XML fetched from a URL (aleg_url), and the gateway "
                   "serves no such document: the stream is closed and Plivo ends the call")


class PlivoCarrier(Carrier):
    """Plivo, for the whole process: one REST client, one stream face per audio stream."""

    name = "plivo"
    capabilities = Capabilities(marks=True, binary_audio=False, codecs=(PCMU,))

    def __init__(self, settings: PlivoSettings) -> None:
        self.settings = settings
        self.rest = PlivoRest(settings)

    @classmethod
    def load_settings(cls, env: Env) -> PlivoSettings:
        """The PLIVO_* variables (`settings.load`)."""
        return load(env)

    @staticmethod
    def secrets_of(settings: Any) -> list[Secret]:
        """The Auth Token, when set."""
        return settings.secrets() if isinstance(settings, PlivoSettings) else []

    # --- the webhook -------------------------------------------------------------------------------

    @property
    def signs_webhooks(self) -> bool:
        return bool(self.settings.auth_token)

    def verify_webhook(self, request: WebhookRequest) -> bool:
        """X-Plivo-Signature-V3 with its nonce, over the URL as given plus the form fields of a POST."""
        return webhook.signature_valid(self.settings.auth_token, request)

    def inbound_call(self, request: WebhookRequest) -> InboundCall:
        """The call's fields from the form of a POST (or the query of a GET); its CallUUID must be a UUID."""
        fields = webhook.webhook_fields(request)
        call_uuid = fields.get("CallUUID") or ""
        if not webhook.call_uuid_valid(call_uuid):
            raise WebhookRefused("bad_request", "CallUUID is missing or not a Plivo call id (a UUID)")
        return webhook.inbound_call(fields, call_uuid)

    def answer(self, call: InboundCall, stream_url: str, parameters: dict[str, str]) -> Answer:
        """A bidirectional μ-law `<Stream>` holding the call, with `parameters` in `extraHeaders`: they come
        back in the stream's `start` (`extra_headers`)."""
        return Answer(webhook.answer_xml(stream_url, parameters), PLIVO_XML)

    def busy(self, message: str) -> Answer:
        return Answer(webhook.busy_xml(message), PLIVO_XML)

    # --- the media stream --------------------------------------------------------------------------

    def verify_handshake(self, stream_url: str, headers: Mapping[str, str]) -> bool:
        """Plivo documents no signature on the stream's WebSocket handshake: the single-use stream token in
        `start` (from `extraHeaders`) is the gate."""
        return True

    def stream_face(self) -> PlivoStream:
        return PlivoStream()

    # --- call control ------------------------------------------------------------------------------

    async def fall_back(self, start: StreamStart, fallback: Fallback) -> None:
        """Unavailable on Plivo (see the module's docstring): raises CallControlUnavailable."""
        raise CallControlUnavailable(NO_DOCUMENT_URL)

    async def hang_up(self, start: StreamStart) -> None:
        await self.rest.hang_up(start.call_id)

    async def transfer(self, start: StreamStart, target: str) -> None:
        """Unavailable on Plivo (see the module's docstring): raises CallControlUnavailable."""
        raise CallControlUnavailable(NO_DOCUMENT_URL)

    async def close(self) -> None:
        await self.rest.close()
