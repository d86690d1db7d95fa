"""Vonage behind the carrier interface: answer webhooks answered with an NCCO, the call's WebSocket (audio
converted between L16 at 8/16 kHz and 24 kHz PCM), Voice REST API call control.

Each method hands over to the module that knows the wire: `webhook` (NCCO, signed-webhook JWT, ids),
`stream` (the WebSocket's frames, with `convert`) and `rest` (the live call).

Capabilities: audio in binary frames of exactly 20 ms (`frame_ms=20`), marks through the WebSocket's
`notify` (see `stream`: if Vonage ever left notifies unanswered, the core's playback estimate would fall
back to the clock, as for a carrier without marks). `codecs` is what the WebSocket carries (L16 at 16 or
8 kHz); the codec the stream's start names, and so the Realtime session's, is 24 kHz L16 whatever that rate.
Keys to the far end (send_dtmf) go through the Voice API (`rest.send_dtmf`), which leaves the call's
WebSocket as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.carriers.base import (
    DTMF_CALL_CONTROL,
    Answer,
    Capabilities,
    Carrier,
    Fallback,
    InboundCall,
    WebhookRefused,
    WebhookRequest,
)
from gateway.carriers.vonage import webhook
from gateway.carriers.vonage.rest import VonageRest
from gateway.carriers.vonage.settings import VonageSettings, load
from gateway.carriers.vonage.stream import VonageStream
from gateway.core.codec import l16
from gateway.core.events import StreamStart
from gateway.env import Env, Secret

NCCO = "application/json"


class VonageCarrier(Carrier):
    """Vonage, for the whole process: one REST client, one stream face per call WebSocket."""

    name = "vonage"
    capabilities = Capabilities(marks=True, binary_audio=True, codecs=(l16(16000), l16(8000)),
                                frame_ms=20, send_dtmf=DTMF_CALL_CONTROL)

    def __init__(self, settings: VonageSettings) -> None:
        self.settings = settings
        self.rest = VonageRest(settings)

    @classmethod
    def load_settings(cls, env: Env) -> VonageSettings:
        """The VONAGE_* variables (`settings.load`)."""
        return load(env)

    @staticmethod
    def secrets_of(settings: Any) -> list[Secret]:
        """The signature secret and the private key, when set."""
        return settings.secrets() if isinstance(settings, VonageSettings) else []

    # --- the webhook -------------------------------------------------------------------------------

    @property
    def signs_webhooks(self) -> bool:
        return bool(self.settings.signature_secret)

    def verify_webhook(self, request: WebhookRequest) -> bool:
        """The signed-webhook JWT in `Authorization: Bearer`: HS256 with the signature secret, fresh, and
        bound to this request's payload by its `payload_hash` (`webhook.signature_problem`)."""
        return webhook.signature_problem(self.settings.signature_secret, request,
                                         application_id=self.settings.application_id) is None

    def inbound_call(self, request: WebhookRequest) -> InboundCall:
        """The call's fields from the query of a GET (Vonage's default) or the JSON body of a POST; its `uuid`
        must be a UUID."""
        fields = webhook.webhook_fields(request)
        call_uuid = fields.get("uuid") or ""
        if not webhook.call_uuid_valid(call_uuid):
            raise WebhookRefused("bad_request", "uuid is missing or not a Vonage call uuid (a UUID)")
        return webhook.inbound_call(fields, call_uuid)

    def answer(self, call: InboundCall, stream_url: str, parameters: dict[str, str]) -> Answer:
        """An NCCO `connect` to our WebSocket at the configured rate; the call's uuid, its region and
        `parameters` travel in the endpoint's `headers` and come back in `websocket:connected`."""
        headers = webhook.stream_headers(call.call_id, parameters, call.extra.get("region_url"))
        return Answer(webhook.answer_ncco(stream_url, self.settings.sample_rate, headers), NCCO)

    def busy(self, message: str) -> Answer:
        return Answer(webhook.busy_ncco(message), NCCO)

    # --- the media stream --------------------------------------------------------------------------

    def verify_handshake(self, stream_url: str, headers: Mapping[str, str]) -> bool:
        """The NCCO asks for no handshake authorization (the endpoint's `authorization` option, in Vonage's
        Node SDK since 2026-03, is not used): the single-use stream token in `websocket:connected` is the
        gate."""
        return True

    def stream_face(self) -> VonageStream:
        return VonageStream(self.settings.sample_rate)

    # --- call control ------------------------------------------------------------------------------

    async def fall_back(self, start: StreamStart, fallback: Fallback) -> None:
        """Transfer the live call to an NCCO: connect the fallback number (shown from the number the caller
        dialed), or say the apology (the call ends with it)."""
        ncco = webhook.fallback_ncco(fallback, start.parameters.get("to"))
        await self.rest.transfer_ncco(start.call_id, ncco, start.parameters.get(webhook.REGION_HEADER))

    async def hang_up(self, start: StreamStart) -> None:
        await self.rest.hang_up(start.call_id, start.parameters.get(webhook.REGION_HEADER))

    async def transfer(self, start: StreamStart, target: str) -> None:
        """Connect `target` (E.164 or sip: URI); a ValueError for any other target, before any request."""
        ncco = webhook.connect_ncco(target, start.parameters.get("to"))
        await self.rest.transfer_ncco(start.call_id, ncco, start.parameters.get(webhook.REGION_HEADER))

    async def send_dtmf(self, start: StreamStart, digits: str) -> None:
        """Play keys into the live call (`PUT /v1/calls/{uuid}/dtmf`): the WebSocket leg stays connected."""
        await self.rest.send_dtmf(start.call_id, digits, start.parameters.get(webhook.REGION_HEADER))

    async def close(self) -> None:
        await self.rest.close()
