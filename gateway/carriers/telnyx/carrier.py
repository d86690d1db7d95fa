"""Telnyx behind the carrier interface: TeXML webhooks, bidirectional RTP media streams, TeXML REST control.

Each method hands over to the module that knows the wire: `webhook` (TeXML, Ed25519 signatures, ids),
`stream` (the media stream's frames) and `rest` (updates of live calls). The sources are listed in the
package's docstring.

No send_dtmf: the media WebSocket takes media, mark and clear only (TX-A); replacing the TeXML to play keys
ends the `<Connect><Stream>`; Call Control's `send_dtmf` acts on the same call_control_id, but Telnyx advises
against Call Control commands on a TeXML call ("TeXML and Telnyx Voice API compatibility", support.telnyx.com
article 8118086): left out until it is confirmed safe.
"""

from __future__ import annotations

import time
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
from gateway.carriers.telnyx import webhook
from gateway.carriers.telnyx.rest import TelnyxRest
from gateway.carriers.telnyx.settings import TelnyxSettings, load
from gateway.carriers.telnyx.stream import TelnyxStream
from gateway.core.codec import PCMA, PCMU, Codec
from gateway.core.events import StreamStart
from gateway.env import Env, Secret

TEXML = "text/xml"


class TelnyxCarrier(Carrier):
    """Telnyx, for the whole process: one REST client, one stream face per media stream. The stream codec
    (PCMU or PCMA, TELNYX_CODEC) is one for the process; Telnyx streams can carry either."""

    name = "telnyx"
    capabilities = Capabilities(marks=True, binary_audio=False, codecs=(PCMU, PCMA))

    def __init__(self, settings: TelnyxSettings) -> None:
        self.settings = settings
        self.rest = TelnyxRest(settings)

    @classmethod
    def load_settings(cls, env: Env) -> TelnyxSettings:
        """The TELNYX_* variables (`settings.load`)."""
        return load(env)

    @staticmethod
    def secrets_of(settings: Any) -> list[Secret]:
        """The API key, when set."""
        return settings.secrets() if isinstance(settings, TelnyxSettings) else []

    # --- the webhook -------------------------------------------------------------------------------

    @property
    def signs_webhooks(self) -> bool:
        return self.settings.verify_key is not None

    def verify_webhook(self, request: WebhookRequest) -> bool:
        """`telnyx-signature-ed25519` over `<telnyx-timestamp>|<body>`, the timestamp within
        TELNYX_WEBHOOK_MAX_AGE_S of now."""
        return webhook.signature_valid(self.settings.verify_key, request, time.time(),
                                       self.settings.webhook_max_age_s)

    def inbound_call(self, request: WebhookRequest) -> InboundCall:
        """The call's fields from the form of a POST or the query of a GET (a GET only while webhooks are not
        verified: its query is not signed); CallSid must be a Call Control id, AccountSid a UUID."""
        if self.signs_webhooks and request.method.upper() != "POST":
            raise WebhookRefused("bad_request", "Telnyx signs the request body only: set the TeXML "
                                 "application's voice method to POST")
        fields = webhook.webhook_fields(request)
        call_id = fields.get("CallSid") or ""
        if not webhook.call_control_id_valid(call_id):
            raise WebhookRefused("bad_request", "CallSid is missing or not a Telnyx Call Control id (v3:...)")
        account_id = fields.get("AccountSid") or ""
        if not webhook.account_id_valid(account_id):
            raise WebhookRefused("bad_request", "AccountSid is missing or not a Telnyx account id (a UUID)")
        return webhook.inbound_call(fields, call_id, account_id)

    def answer(self, call: InboundCall, stream_url: str, parameters: dict[str, str]) -> Answer:
        """`<Connect><Stream bidirectionalMode="rtp">` in the configured codec, with `parameters` as
        `<Parameter>`s: they come back in the stream's `start.custom_parameters`."""
        return Answer(webhook.answer_texml(stream_url, parameters, self.settings.codec), TEXML)

    def busy(self, message: str) -> Answer:
        return Answer(webhook.busy_texml(message), TEXML)

    # --- the media stream --------------------------------------------------------------------------

    def verify_handshake(self, stream_url: str, headers: Mapping[str, str]) -> bool:
        """TeXML streams carry no handshake signature (Call Control's `stream_auth_token` has no TeXML
        counterpart in TX-S): the single-use stream token in `start.custom_parameters` is the gate."""
        return True

    def stream_face(self) -> TelnyxStream:
        return TelnyxStream(self.settings.codec)

    @property
    def answer_codec(self) -> Codec:
        return self.settings.codec  # TELNYX_CODEC: the codec its TeXML answers name

    # --- call control ------------------------------------------------------------------------------

    async def fall_back(self, start: StreamStart, fallback: Fallback) -> None:
        """Replace the live call's TeXML with the fallback's: dial its number, or apologise and hang up."""
        await self.rest.update(start.call_id, start.account_id, texml=webhook.fallback_texml(fallback))

    async def hang_up(self, start: StreamStart) -> None:
        await self.rest.hang_up(start.call_id, start.account_id)

    async def transfer(self, start: StreamStart, target: str) -> None:
        """Dial `target` (E.164 or sip: URI); a ValueError for any other target, before any request."""
        await self.rest.update(start.call_id, start.account_id, texml=webhook.transfer_texml(target))

    async def close(self) -> None:
        await self.rest.close()
