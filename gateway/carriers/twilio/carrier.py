"""Twilio behind the carrier interface: Programmable Voice webhooks, Media Streams, REST call control.

Each method hands over to the module that knows the wire: `webhook` (TwiML and signatures),
`stream` (the media stream's frames) and `rest` (updates of live calls).

No send_dtmf: a bidirectional Media Stream carries DTMF inbound only, and the one REST way to play keys
(`<Play digits>`) replaces the call's TwiML, which ends the `<Connect><Stream>` (protocol-reference §4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.carriers.base import (
    Answer,
    CallProgress,
    Capabilities,
    Carrier,
    Fallback,
    InboundCall,
    PlaceCall,
    WebhookRefused,
    WebhookRequest,
)
from gateway.carriers.twilio import webhook
from gateway.carriers.twilio.rest import TwilioRest
from gateway.carriers.twilio.settings import TwilioSettings, load
from gateway.carriers.twilio.stream import TwilioStream
from gateway.core.codec import PCMU
from gateway.core.events import StreamStart
from gateway.env import Env, Secret

TWIML = "text/xml"
_NO_FIELDS: Mapping[str, str] = {}


class TwilioCarrier(Carrier):
    """Twilio, for the whole process: one REST client, one stream face per media stream."""

    name = "twilio"
    capabilities = Capabilities(marks=True, binary_audio=False, codecs=(PCMU,))

    def __init__(self, settings: TwilioSettings) -> None:
        self.settings = settings
        self.rest = TwilioRest(settings)

    @classmethod
    def load_settings(cls, env: Env) -> TwilioSettings:
        """The TWILIO_* variables (`settings.load`)."""
        return load(env)

    @staticmethod
    def secrets_of(settings: Any) -> list[Secret]:
        """The auth token and the API key secret, when set."""
        return settings.secrets() if isinstance(settings, TwilioSettings) else []

    # --- the webhook -------------------------------------------------------------------------------

    @property
    def signs_webhooks(self) -> bool:
        return bool(self.settings.auth_token)

    def verify_webhook(self, request: WebhookRequest) -> bool:
        """X-Twilio-Signature over the URL as given, plus the form fields of a POST (none for a GET)."""
        form = request.form if request.method.upper() == "POST" else _NO_FIELDS
        return webhook.signature_valid(self.settings.auth_token, request.url, form, request.headers)

    def inbound_call(self, request: WebhookRequest) -> InboundCall:
        """The call's fields from the form of a POST or the query of a GET (§4.6)."""
        fields = webhook.webhook_fields(request)
        call_sid = fields.get("CallSid") or ""
        if not webhook.call_sid_valid(call_sid):
            raise WebhookRefused("bad_request", "CallSid is missing or malformed")
        return webhook.inbound_call(fields, call_sid, fields.get("AccountSid") or None)

    def answer(self, call: InboundCall, stream_url: str, parameters: dict[str, str]) -> Answer:
        """`<Connect><Stream>`, with `parameters` as `<Parameter>`s: they come back in the stream's start."""
        return Answer(webhook.answer_twiml(stream_url, parameters), TWIML)

    def busy(self, message: str) -> Answer:
        return Answer(webhook.busy_twiml(message), TWIML)

    # --- the media stream --------------------------------------------------------------------------

    def verify_handshake(self, stream_url: str, headers: Mapping[str, str]) -> bool:
        return webhook.handshake_signature_valid(self.settings.auth_token, stream_url, headers)

    def stream_face(self) -> TwilioStream:
        return TwilioStream()

    # --- call control ------------------------------------------------------------------------------

    async def fall_back(self, start: StreamStart, fallback: Fallback) -> None:
        """Update the live call with the fallback's TwiML: dial its number, or apologise and hang up."""
        await self.rest.update(start.call_id, webhook.fallback_twiml(fallback), start.account_id)

    async def hang_up(self, start: StreamStart) -> None:
        await self.rest.update(start.call_id, webhook.hangup_twiml(), start.account_id)

    async def transfer(self, start: StreamStart, target: str) -> None:
        """Dial `target` (E.164 or sip: URI); a ValueError for any other target, before any request."""
        await self.rest.update(start.call_id, webhook.transfer_twiml(target), start.account_id)

    # --- calls the gateway places ------------------------------------------------------------------

    async def place_call(self, request: PlaceCall) -> str:
        """Calls resource, create: the `<Connect><Stream>` TwiML inline, every progress event to the status
        URL, and with machine detection, async AMD to the end of a machine's greeting."""
        twiml = webhook.connect_twiml(request.stream_url, request.parameters)
        return await self.rest.create(to=request.to, from_=request.from_number, twiml=twiml,
                                      status_callback=request.status_url, timeout_s=request.ring_timeout_s,
                                      amd_callback=request.amd_url if request.machine_detection else None)

    async def cancel_call(self, call_id: str, *, answered: bool) -> None:
        """Status=canceled stops a call still ringing; Status=completed hangs up an answered one."""
        await self.rest.update(call_id, status="completed" if answered else "canceled")

    def call_progress(self, request: WebhookRequest) -> CallProgress:
        return webhook.call_progress(webhook.webhook_fields(request))

    async def close(self) -> None:
        await self.rest.close()
