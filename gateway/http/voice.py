"""The voice webhook: Twilio asks what to do with a call; we connect its audio to our media socket."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, RequestValidator, get_signature_algorithm
from twilio.twiml.voice_response import Connect, VoiceResponse

from gateway.observability import metrics

if TYPE_CHECKING:
    from gateway.app import GatewayState

log = structlog.get_logger("gateway.voice")

BUSY_MESSAGE = "Sorry, all our lines are busy right now. Please call again later."


def public_base_url(state: GatewayState, request: web.Request) -> str:
    """The URL Twilio used to reach us: the configured PUBLIC_URL, else what the request says."""
    if state.settings.public_url:
        return state.settings.public_url
    proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{proto}://{host}"


def media_url(state: GatewayState, request: web.Request) -> str:
    base = public_base_url(state, request)
    return ("wss://" + base[len("https://"):] if base.startswith("https://")
            else "ws://" + base[len("http://"):]) + "/media"


def signature_valid(state: GatewayState, request: web.Request, params: MultiDict[str]) -> bool:
    token = state.settings.twilio_auth_token
    if not token:
        return True
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature:
        return False
    url = public_base_url(state, request) + request.path_qs
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    return RequestValidator(token.reveal()).validate(url, params, signature, algorithm)


def handshake_signature_valid(state: GatewayState, request: web.Request) -> bool:
    """The media WebSocket handshake, where Twilio signs it: over the stream URL as written in the TwiML
    (wss scheme) or with a trailing slash, with no params (protocol-reference.md §4.2). A handshake
    without the header passes: the single-use stream token in `start` is the gate that always applies."""
    token = state.settings.twilio_auth_token
    signature = request.headers.get("X-Twilio-Signature")
    if not token or signature is None:
        return True
    url = media_url(state, request)
    validator = RequestValidator(token.reveal())
    algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
    return any(validator.validate(candidate, {}, signature, algorithm) for candidate in (url, url + "/"))


def busy_twiml() -> str:
    response = VoiceResponse()
    response.say(BUSY_MESSAGE)
    response.hangup()
    return str(response)


async def voice_webhook(request: web.Request) -> web.Response:
    from gateway.app import STATE

    state = request.app[STATE]
    params: MultiDict[str] = MultiDict(await request.post()) if request.method == "POST" else MultiDict()
    if not signature_valid(state, request, params):
        metrics.WEBHOOKS.labels("forbidden").inc()
        log.warning("webhook_signature_invalid", remote=request.remote, path=request.path)
        raise web.HTTPForbidden(text="invalid X-Twilio-Signature\n")
    if request.method == "GET":
        params = MultiDict(request.query)
    call_sid = params.get("CallSid", "")
    if not call_sid.startswith("CA") or len(call_sid) > 64:
        metrics.WEBHOOKS.labels("bad_request").inc()
        log.warning("webhook_without_callsid", remote=request.remote)
        raise web.HTTPBadRequest(text="CallSid is missing or malformed\n")
    log_call = log.bind(call_sid=call_sid)
    if not state.accepting_calls():
        metrics.WEBHOOKS.labels("busy").inc()
        log_call.warning("call_refused_busy", draining=state.draining, active=len(state.calls))
        return web.Response(text=busy_twiml(), content_type="text/xml")

    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=media_url(state, request))
    stream.parameter(name="token", value=state.tokens.mint(call_sid))
    for name in ("From", "To"):
        if params.get(name):
            stream.parameter(name=name.lower(), value=params[name][:200])
    response.append(connect)
    metrics.WEBHOOKS.labels("accepted").inc()
    log_call.info("call_answered", direction=params.get("Direction"))
    return web.Response(text=str(response), content_type="text/xml")
