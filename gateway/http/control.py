"""Control documents: the markup a carrier fetches to move a live call (the fallback, a transfer).

Most carriers take the new markup inline in their REST call (Twilio's `twiml`); Plivo takes only a URL
(`aleg_url`) and fetches the XML from it. For those, the gateway serves the document itself at
`/voice/<carrier>/control/<token>`, where the token says what the document is (kind, call id, transfer
target) and is signed with the stream-token secret (which every replica shares), so any replica can
serve it and nobody can make one up: the transfer target in particular comes only from the gateway.
The request must also carry the carrier's webhook signature when the carrier signs webhooks.

URLs are minted only when the gateway knows its public URL (`PUBLIC_URL`): a live call's REST request
is made from the media socket, whose own URL says nothing about where the carrier reaches the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

import orjson
import structlog
from aiohttp import web
from multidict import MultiDict

from gateway.carriers.base import ControlDocument, WebhookRefused, WebhookRequest
from gateway.env import Secret
from gateway.http.stream_tokens import TokenRejected
from gateway.http.urls import carrier_of, public_base_url
from gateway.observability import metrics
from gateway.state import STATE

log = structlog.get_logger("gateway.control")

CONTROL_TTL_S = 600.0  # the carrier fetches the document right after the REST call; generous for retries
KINDS = ("fallback", "transfer")
MAX_TOKEN_CHARS = 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ControlLinks:
    """Mints and reads the signed URLs of control documents for one public base URL."""

    def __init__(self, secret: Secret, public_url: str, ttl_s: float = CONTROL_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = secret.reveal().encode()
        self.public_url = public_url.rstrip("/")
        self._ttl = ttl_s
        self._clock = clock

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, b"ctl1|" + body.encode(), hashlib.sha256).digest())

    def token(self, document: ControlDocument) -> str:
        fields: dict[str, object] = {"k": document.kind, "c": document.call_id,
                                     "e": int(self._clock() + self._ttl) + 1}
        if document.target is not None:
            fields["t"] = document.target
        body = _b64(orjson.dumps(fields))
        return f"{body}.{self._sign(body)}"

    def url_for(self, carrier: str) -> Callable[[ControlDocument], str]:
        """The `Carrier.document_url` of one carrier."""
        def url(document: ControlDocument) -> str:
            return f"{self.public_url}/voice/{carrier}/control/{self.token(document)}"
        return url

    def read(self, token: str) -> ControlDocument:
        """The document a token names, or TokenRejected (bounded reason)."""
        body, _, signature = token.partition(".")
        if not body or not signature or len(token) > MAX_TOKEN_CHARS:
            raise TokenRejected("malformed")
        if not hmac.compare_digest(signature.encode(), self._sign(body).encode()):
            raise TokenRejected("bad_signature")
        try:
            fields = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (ValueError, orjson.JSONDecodeError):
            raise TokenRejected("malformed") from None
        if (type(fields) is not dict or fields.get("k") not in KINDS or type(fields.get("c")) is not str
                or type(fields.get("e")) is not int or type(fields.get("t", "")) is not str):
            raise TokenRejected("malformed")
        if self._clock() > fields["e"]:
            raise TokenRejected("expired")
        return ControlDocument(fields["k"], fields["c"], fields.get("t"))


async def control_document(request: web.Request) -> web.Response:
    """GET or POST /voice/{carrier}/control/{token}: the document, in the carrier's markup."""
    state = request.app[STATE]
    carrier = carrier_of(state, request)
    links = state.control_links
    if links is None:
        raise web.HTTPNotFound(text="control documents need PUBLIC_URL\n")
    try:
        document = links.read(request.match_info["token"])
    except TokenRejected as exc:
        metrics.WEBHOOKS.labels("forbidden").inc()
        log.warning("control_document_refused", carrier=carrier.name, reason=exc.reason, remote=request.remote)
        raise web.HTTPForbidden(text=f"control document refused: {exc.reason}\n") from None
    form: MultiDict[str] = MultiDict()
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        form = MultiDict(await request.post())
    webhook = WebhookRequest(method=request.method, url=public_base_url(state, request) + request.path_qs,
                             headers=request.headers, form=form, query=request.query, body=await request.read())
    if not carrier.verify_webhook(webhook):
        metrics.WEBHOOKS.labels("forbidden").inc()
        log.warning("control_document_signature_invalid", carrier=carrier.name, remote=request.remote)
        raise web.HTTPForbidden(text="invalid webhook signature\n")
    try:
        answer = carrier.control_document(document, state.settings.fallback)
    except WebhookRefused as exc:
        metrics.WEBHOOKS.labels(exc.label).inc()
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    metrics.WEBHOOKS.labels("control_document").inc()
    log.info("control_document_served", carrier=carrier.name, call_sid=document.call_id, kind=document.kind)
    return web.Response(text=answer.body, content_type=answer.content_type)
