"""SignalWire behind the carrier interface: cXML webhooks, media streams, LaML REST call control.

The markup and the stream are Twilio's (`carriers.twilio.webhook` writes the cXML, the stream face is
the Twilio one, see `stream`); the signatures, the ids and the REST API are SignalWire's own
(`webhook`, `rest`).

No send_dtmf, as for Twilio: replacing the cXML to play keys ends the stream, and the `<Stream>` page read
documents no message that plays keys on a bidirectional stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.carriers.base import (
    Answer,
    Capabilities,
    Carrier,
    Fallback,
    InboundCall,
    WebhookRefused,
    WebhookRequest,
)
from gateway.carriers.signalwire import webhook
from gateway.carriers.signalwire.rest import SignalWireRest
from gateway.carriers.signalwire.settings import SignalWireSettings, load
from gateway.carriers.signalwire.stream import SignalWireStream
from gateway.carriers.twilio import webhook as twiml
from gateway.core.codec import PCMU
from gateway.core.events import StreamStart
from gateway.env import Env, Secret

CXML = "text/xml"
_NO_FIELDS: Mapping[str, str] = {}


class SignalWireCarrier(Carrier):
    """SignalWire, for the whole process: one REST client, one stream face per media stream."""

    name = "signalwire"
    capabilities = Capabilities(marks=True, binary_audio=False, codecs=(PCMU,))

    def __init__(self, settings: SignalWireSettings) -> None:
        self.settings = settings
        self.rest = SignalWireRest(settings)

    @classmethod
    def load_settings(cls, env: Env) -> SignalWireSettings:
        """The SIGNALWIRE_* variables (`settings.load`)."""
        return load(env)

    @staticmethod
    def secrets_of(settings: Any) -> list[Secret]:
        """The Signing Key and the API token, when set."""
        return settings.secrets() if isinstance(settings, SignalWireSettings) else []

    # --- the webhook -------------------------------------------------------------------------------

    @property
    def signs_webhooks(self) -> bool:
        return bool(self.settings.signing_key)

    def verify_webhook(self, request: WebhookRequest) -> bool:
        """X-SignalWire-Signature over the URL as given, plus the form fields of a POST (none for a GET)."""
        post = request.method.upper() == "POST"
        form = request.form if post else _NO_FIELDS
        return webhook.signature_valid(self.settings.signing_key, request.url, form,
                                       request.body if post else b"", request.headers)

    def inbound_call(self, request: WebhookRequest) -> InboundCall:
        """The call's fields from the form of a POST or the query of a GET; its ids must be UUIDs."""
        fields = twiml.webhook_fields(request)
        call_sid = fields.get("CallSid") or ""
        if not webhook.call_sid_valid(call_sid):
            raise WebhookRefused("bad_request", "CallSid is missing or not a SignalWire call id (a UUID)")
        account_sid = fields.get("AccountSid") or None
        if account_sid is not None and not webhook.account_sid_valid(account_sid):
            raise WebhookRefused("bad_request", "AccountSid is not a SignalWire project id (a UUID)")
        return twiml.inbound_call(fields, call_sid, account_sid)

    def answer(self, call: InboundCall, stream_url: str, parameters: dict[str, str]) -> Answer:
        """`<Connect><Stream>` (bidirectional), with `parameters` as `<Parameter>`s: they come back in the
        stream's `start.customParameters`."""
        return Answer(twiml.answer_twiml(stream_url, parameters), CXML)

    def busy(self, message: str) -> Answer:
        return Answer(twiml.busy_twiml(message), CXML)

    # --- the media stream --------------------------------------------------------------------------

    def verify_handshake(self, stream_url: str, headers: Mapping[str, str]) -> bool:
        """SignalWire does not sign the media handshake (its `<Stream>` reference lists only an optional
        `Authorization: Bearer` from `authBearerToken`): the single-use stream token in `start` is the gate."""
        return True

    def stream_face(self) -> SignalWireStream:
        return SignalWireStream()

    # --- call control ------------------------------------------------------------------------------

    async def fall_back(self, start: StreamStart, fallback: Fallback) -> None:
        """Update the live call with the fallback's cXML: dial its number, or apologise and hang up."""
        await self.rest.update(start.call_id, twiml=twiml.fallback_twiml(fallback))

    async def hang_up(self, start: StreamStart) -> None:
        await self.rest.update(start.call_id, status="completed")

    async def transfer(self, start: StreamStart, target: str) -> None:
        """Dial `target` (E.164 or sip: URI); a ValueError for any other target, before any request."""
        await self.rest.update(start.call_id, twiml=twiml.transfer_twiml(target))

    async def close(self) -> None:
        await self.rest.close()
