"""The call API: place a call (`POST /calls`), look at a call (`GET /calls/{id}`), hang it up
(`DELETE /calls/{id}`), transfer it (`POST /calls/{id}/transfer`). The last three work on every live call,
inbound ones too (by CallSid), and on the calls this process placed (by CallSid or by their `out_...` id).

Behind the bearer token ADMIN_TOKEN, compared in constant time; without one the API is off (403) and the
rest of the gateway runs as before. Every refusal is JSON `{"error": ...}` naming the field or the setting,
counted in `gateway_outbound_requests_total{result}`.

A placed call goes like this: its place is held (MAX_CONCURRENT_CALLS), its stream token is minted for the
gateway's own id of the call (the carrier names the call only in its answer, after the TwiML that carries
the token), the carrier places it with the TwiML that connects the stream, a status callback URL and, when
asked, answering-machine detection; the stream then runs like an inbound call's (`http/media.py`).
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from gateway.carriers.base import CallControlUnavailable, PlaceCall
from gateway.http.admin import authorized
from gateway.http.status import amd_callback, status_callback
from gateway.http.stream_tokens import binding
from gateway.http.urls import public_base_url, websocket_url
from gateway.observability import metrics
from gateway.observability.reports import mask_number
from gateway.outbound.calls import OutboundCall, new_id
from gateway.outbound.request import Refused, call_request, json_object, transfer_target
from gateway.state import STATE, GatewayState

log = structlog.get_logger("gateway.outbound")

TOKEN_GRACE_S = 60  # the stream token outlives the ring timeout by this much (answer, then connect)


def add_routes(router: web.UrlDispatcher) -> None:
    """The call API's routes (GET /calls, the list, stays in http/admin.py) and the status callbacks'."""
    router.add_post("/calls", place_call)
    router.add_get("/calls/{id}", get_call)
    router.add_delete("/calls/{id}", hang_up)
    router.add_post("/calls/{id}/transfer", transfer)
    router.add_post("/status/{carrier}", status_callback)
    router.add_post("/status/{carrier}/amd", amd_callback)


def error(status: int, label: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """A refusal: counted, and answered as JSON naming what is wrong."""
    metrics.OUTBOUND_REQUESTS.labels(label).inc()
    return web.json_response({"error": message}, status=status, headers=headers)


def _refusal(request: web.Request) -> web.Response | None:
    """403 when the API is off (no ADMIN_TOKEN), 401 without the right bearer token; None: go on."""
    if request.app[STATE].settings.admin_token is None:
        return error(403, "off", "the call API is off: set ADMIN_TOKEN (its bearer token) to turn it on")
    if not authorized(request):
        return error(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer $ADMIN_TOKEN)",
                     {"WWW-Authenticate": 'Bearer realm="gateway"'})
    return None


def live_session(state: GatewayState, call_id: str) -> Any:
    """The media session of a live call by its CallSid (inbound or placed), or None."""
    for call in list(state.calls):
        start = getattr(call, "start", None)
        if start is not None and start.call_id == call_id and getattr(call, "token_valid", False):
            return call
    return None


async def place_call(request: web.Request) -> web.Response:
    """POST /calls {to, from?, agent?, variables?, metadata?, machine_detection?} -> 201 {id, outbound_id, ...}."""
    if (refusal := _refusal(request)) is not None:
        return refusal
    state = request.app[STATE]
    settings = state.settings.outbound
    try:
        call = call_request(json_object(await request.read()), state.agents, settings)  # type: ignore[arg-type]
    except Refused as exc:
        return error(exc.status, exc.label, str(exc))
    if state.draining:
        return error(503, "draining", "the gateway is draining (shutting down): it places no new calls")
    carrier = state.carriers.get(settings.carrier)
    if carrier is None:  # OUTBOUND_CARRIER is checked at start-up; a registry without it is a test's doing
        return error(503, "unavailable", f"OUTBOUND_CARRIER {settings.carrier} is not a carrier of this gateway")
    wait = state.outbound.retry_after(settings.max_per_minute)
    if wait is not None:
        return error(429, "rate_limited", f"{settings.max_per_minute} calls were placed in the last minute "
                     f"(OUTBOUND_MAX_PER_MINUTE): retry in {wait} s", {"Retry-After": str(wait)})
    oid = new_id()
    token_ttl = settings.ring_timeout_s + TOKEN_GRACE_S
    if not state.reserve(oid, token_ttl + state.settings.stream_token_ttl_s):
        if state.draining:
            return error(503, "draining", "the gateway is draining (shutting down): it places no new calls")
        return error(503, "busy", f"over capacity: {state.settings.max_concurrent_calls} calls are active or due "
                     "(MAX_CONCURRENT_CALLS)")
    parameters = {"outbound": oid, "agent": call.profile.name}
    if (variables := call.variables_json()) is not None:
        parameters["vars"] = variables
    parameters.update({"from": call.from_number, "to": call.to})
    if call.machine_detection:
        parameters["amd"] = "1"  # the stream knows from its start that the answer's verdict is pending
    parameters = {"token": state.tokens.mint(oid, binding(parameters), ttl_s=token_ttl), **parameters}
    record = OutboundCall(oid=oid, carrier=carrier.name, to=call.to, from_number=call.from_number,
                          agent=call.profile.name, variables=call.variables, metadata=call.metadata,
                          machine_detection=call.machine_detection)
    state.outbound.add(record)
    state.outbound.count_placed()
    base = public_base_url(state, request)
    place = PlaceCall(to=call.to, from_number=call.from_number,
                      stream_url=websocket_url(state, request, f"/media/{carrier.name}"), parameters=parameters,
                      status_url=f"{base}/status/{carrier.name}?call={oid}", ring_timeout_s=settings.ring_timeout_s,
                      machine_detection=call.machine_detection, amd_url=f"{base}/status/{carrier.name}/amd?call={oid}")
    log_call = log.bind(outbound_id=oid, carrier=carrier.name, to=mask_number(call.to), agent=call.profile.name)
    try:
        call_sid = await carrier.place_call(place)
    except CallControlUnavailable as exc:
        _forget(state, record)
        log_call.warning("outbound_call_unavailable", reason=str(exc))
        return error(503, "unavailable", f"{carrier.name} cannot place the call: {exc}")
    except ValueError as exc:  # a request the carrier would refuse, found before sending it
        _forget(state, record)
        return error(400, "bad_request", str(exc))
    except Exception as exc:
        _forget(state, record)
        detail = _carrier_error(exc)
        log_call.error("outbound_call_failed", error=detail)
        return error(502, "carrier_error", f"{carrier.name} did not place the call: {detail}")
    state.outbound.bind(record, call_sid)
    metrics.OUTBOUND_REQUESTS.labels("placed").inc()
    log_call.info("outbound_call_placed", call_sid=call_sid, machine_detection=call.machine_detection)
    answer = {"id": call_sid, "outbound_id": oid, "status": record.status, "carrier": carrier.name, "to": call.to,
              "from": call.from_number, "agent": call.profile.name, "machine_detection": call.machine_detection}
    return web.json_response(answer, status=201, headers={"Location": f"/calls/{call_sid}"})


def _forget(state: GatewayState, record: OutboundCall) -> None:
    state.release(record.oid)
    state.outbound.remove(record)


def _carrier_error(exc: Exception) -> str:
    """What the carrier said, without anything of the request (no credentials are in these fields)."""
    status, code, message = getattr(exc, "status", None), getattr(exc, "code", None), getattr(exc, "msg", None)
    if status is not None:
        return f"HTTP {status}" + (f", error {code}" if code else "") + (f": {str(message)[:200]}" if message else "")
    return type(exc).__name__


async def get_call(request: web.Request) -> web.Response:
    """GET /calls/{id}: a placed call's record, and the running figures of its stream (any live call's)."""
    if (refusal := _refusal(request)) is not None:
        return refusal
    state, call_id = request.app[STATE], request.match_info["id"]
    record = state.outbound.get(call_id)
    session = record.session if record is not None else live_session(state, call_id)
    if record is None and session is None:
        return error(404, "not_found", f"no call {call_id[:64]!r} here: neither live nor placed by this gateway "
                     "recently (ids are CallSids, or out_... for a placed call)")
    answer: dict[str, Any] = record.describe() if record is not None else {"id": call_id, "direction": "inbound"}
    answer["live"] = session.snapshot() if session is not None else None
    return web.json_response(answer)


async def hang_up(request: web.Request) -> web.Response:
    """DELETE /calls/{id}: a live call is ended by the carrier and its stream closed; a placed call still
    ringing (or with no stream here) is ended through the carrier's REST API."""
    if (refusal := _refusal(request)) is not None:
        return refusal
    state, call_id = request.app[STATE], request.match_info["id"]
    record = state.outbound.get(call_id)
    session = record.session if record is not None else live_session(state, call_id)
    if session is not None:
        if record is not None:
            record.ended_by = "api"
        await session.hang_up_by_api()
        metrics.OUTBOUND_REQUESTS.labels("hung_up").inc()
        return web.json_response({"id": session.start.call_id, "status": "hung_up"})
    if record is None:
        return error(404, "not_found", f"no live or placed call {call_id[:64]!r} here")
    if record.finished or record.call_sid is None:
        what = f"already over ({record.result})" if record.finished else "not yet named by the carrier"
        return error(409, "conflict", f"the call {call_id[:64]} is {what}")
    carrier = state.carriers[record.carrier]
    try:
        await carrier.cancel_call(record.call_sid, answered=record.status == "in-progress")
    except CallControlUnavailable as exc:
        return error(503, "unavailable", str(exc))
    except Exception as exc:
        detail = _carrier_error(exc)
        log.error("outbound_cancel_failed", call_sid=record.call_sid, error=detail)
        return error(502, "carrier_error", f"{carrier.name} did not end the call: {detail}")
    record.ended_by = "api"
    metrics.OUTBOUND_REQUESTS.labels("hung_up").inc()
    log.info("outbound_call_cancelled", call_sid=record.call_sid, status=record.status)
    return web.json_response({"id": record.call_sid, "outbound_id": record.oid, "status": "ending"}, status=202)


async def transfer(request: web.Request) -> web.Response:
    """POST /calls/{id}/transfer {"to": "+1..." | "sip:..."}: a live call is moved there by the carrier."""
    if (refusal := _refusal(request)) is not None:
        return refusal
    state, call_id = request.app[STATE], request.match_info["id"]
    try:
        target = transfer_target(json_object(await request.read()), state.settings.outbound)
    except Refused as exc:
        return error(exc.status, exc.label, str(exc))
    record = state.outbound.get(call_id)
    session = record.session if record is not None else live_session(state, call_id)
    if session is None:
        if record is not None:
            return error(409, "conflict", f"the call {call_id[:64]} has no live stream here (status {record.status})")
        return error(404, "not_found", f"no live call {call_id[:64]!r} here")
    result = await session.transfer_to(target)
    if result == "unavailable":
        return error(503, "unavailable", f"{session.carrier.name} cannot transfer this call (see the log)")
    if result != "transferred":
        return error(502, "carrier_error", f"{session.carrier.name} did not transfer the call (see the log)")
    metrics.OUTBOUND_REQUESTS.labels("transferred").inc()
    return web.json_response({"id": session.start.call_id, "status": "transferred"})
