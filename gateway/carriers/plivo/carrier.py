"""Plivo behind the carrier interface: answer-URL webhooks, Audio Streams, Call API control.

Each method hands over to the module that knows the wire: `webhook` (Plivo XML, V3 signatures, ids),
`stream` (the audio stream's frames) and `rest` (the live call).

Call control: Plivo hangs a call up with one REST call (`DELETE .../Call/{uuid}/`), but moves it only
to XML fetched from a URL (`POST .../Call/{uuid}/` with `aleg_url`); it takes no inline XML. The gateway
serves that XML itself as a control document (`http.control`: a signed URL under `PUBLIC_URL`, fetched
with Plivo's V3 signature when the Auth Token is set): the fallback (`<Speak>` + `<Hangup>`, or `<Dial>`
the fallback number) and transfers (`<Dial>` a number or a SIP user). Without `PUBLIC_URL` there is no
URL to give Plivo: `fall_back` and `transfer` raise CallControlUnavailable, the gateway closes the
stream, and as nothing follows the `<Stream>` in the answer, Plivo ends the call.

Keys to the far end (send_dtmf) travel on the stream itself (`sendDTMF`, encoded by the stream face): no
credentials needed, and the stream goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.carriers.base import (
    DTMF_STREAM,
    Answer,
    CallControlUnavailable,
    Capabilities,
    Carrier,
    ControlDocument,
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
                   "serves it only when PUBLIC_URL is set: the stream is closed and Plivo ends the call")


class PlivoCarrier(Carrier):
    """Plivo, for the whole process: one REST client, one stream face per audio stream."""

    name = "plivo"
    capabilities = Capabilities(marks=True, binary_audio=False, codecs=(PCMU,), send_dtmf=DTMF_STREAM)

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

    async def _move(self, document: ControlDocument) -> None:
        if self.document_url is None:
            raise CallControlUnavailable(NO_DOCUMENT_URL)
        self.rest.endpoint(document.call_id)  # credentials and id first: no URL minted for nothing
        await self.rest.transfer(document.call_id, self.document_url(document))

    async def fall_back(self, start: StreamStart, fallback: Fallback) -> None:
        """Move the call to the fallback document (see the module's docstring)."""
        await self._move(ControlDocument("fallback", start.call_id))

    async def hang_up(self, start: StreamStart) -> None:
        await self.rest.hang_up(start.call_id)

    async def transfer(self, start: StreamStart, target: str) -> None:
        """Move the call to a document that dials `target` (see the module's docstring)."""
        await self._move(ControlDocument("transfer", start.call_id, target))

    def control_document(self, document: ControlDocument, fallback: Fallback) -> Answer:
        """The XML Plivo fetched from `aleg_url`: the fallback, or the transfer's `<Dial>`."""
        if document.kind == "transfer" and document.target:
            return Answer(webhook.dial_xml(document.target), PLIVO_XML)
        if fallback.number:
            return Answer(webhook.dial_xml(fallback.number, fallback.message), PLIVO_XML)
        return Answer(webhook.busy_xml(fallback.message), PLIVO_XML)

    async def close(self) -> None:
        await self.rest.close()
