"""The voice webhook: a carrier asks what to do with a call; we connect its audio to our media socket.

Carrier-neutral: the carrier verifies the request, reads the call from it and writes the answer in
its own markup; this handler checks capacity and mints the single-use stream token the media socket
will require. For a signed webhook (the carrier's signature verified), it also has a warm upstream session
configured for the call's stream, when the warm pool is on (`http/warm.py`).
"""

from __future__ import annotations

import structlog
from aiohttp import web
from multidict import MultiDict

from gateway.carriers.base import WebhookRefused, WebhookRequest
from gateway.http.call_agent import choose
from gateway.http.stream_tokens import binding
from gateway.http.urls import carrier_of, public_base_url, websocket_url
from gateway.observability import metrics
from gateway.realtime.connection import with_model
from gateway.state import STATE

log = structlog.get_logger("gateway.voice")

BUSY_MESSAGE = "Sorry, all our lines are busy right now. Please call again later."


async def voice_webhook(request: web.Request) -> web.Response:
    state = request.app[STATE]
    carrier = carrier_of(state, request)
    body = await request.read()
    form: MultiDict[str] = MultiDict()
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        form = MultiDict(await request.post())
    webhook = WebhookRequest(method=request.method, url=public_base_url(state, request) + request.path_qs,
                             headers=request.headers, form=form, query=request.query, body=body)
    if not carrier.verify_webhook(webhook):
        metrics.WEBHOOKS.labels("forbidden").inc()
        log.warning("webhook_signature_invalid", remote=request.remote, path=request.path, carrier=carrier.name)
        raise web.HTTPForbidden(text="invalid webhook signature\n")
    try:
        call = carrier.inbound_call(webhook)
    except WebhookRefused as exc:
        metrics.WEBHOOKS.labels(exc.label).inc()
        log.warning("webhook_refused", remote=request.remote, carrier=carrier.name, reason=str(exc))
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    log_call = log.bind(call_sid=call.call_id, carrier=carrier.name)
    if not state.reserve(call.call_id):
        metrics.WEBHOOKS.labels("busy").inc()
        log_call.warning("call_refused_busy", draining=state.draining, active=len(state.calls))
        answer = carrier.busy(BUSY_MESSAGE)
        return web.Response(text=answer.body, content_type=answer.content_type)

    # The agent is chosen here, by the dialed number, and signed into the token with it: the stream (on
    # whichever replica) runs the agent the number had when the call was answered.
    agent = state.agents.route(call.to_number).name if state.agents is not None else "default"
    parameters = {"token": "", "agent": agent}
    for name, value in (("from", call.from_number), ("to", call.to_number)):
        if value:
            parameters[name] = value[:200]
    parameters["token"] = state.tokens.mint(call.call_id, binding(parameters))
    answer = carrier.answer(call, websocket_url(state, request, f"/media/{carrier.name}"), parameters)
    if state.warm is not None and carrier.signs_webhooks and state.agents is not None:
        # Verified above: never for a stranger's request. Configured for the agent the stream will choose
        # (the same choice, from the same parameters); an agent on another model than the pool's dials out.
        profile, agent = choose(state.agents, parameters, log_call)
        if with_model(state.upstream, profile.model) is state.upstream:
            state.warm.park_for(call.call_id, carrier, agent, state.tokens.ttl_s)
    metrics.WEBHOOKS.labels("accepted").inc()
    log_call.info("call_answered", direction=call.direction, agent=agent)
    return web.Response(text=answer.body, content_type=answer.content_type)
