"""Status callbacks of the calls the gateway places: `POST /status/{carrier}` (ringing, answered, busy, ...,
completed with its duration) and `POST /status/{carrier}/amd` (who answered: answering-machine detection).

Checked like the voice webhook (the carrier's signature over the public URL, query included: the URLs given
to the carrier carry the gateway's id of the call), read by the carrier into a neutral `CallProgress`, and
recorded on the call's record (`outbound.calls`). A call that ends without a media stream here (busy, not
answered, failed, canceled) gets its call summary from here; one that streamed has it from its media session.
"""

from __future__ import annotations

import datetime as dt

import structlog
from aiohttp import web
from multidict import MultiDict

from gateway.carriers.base import Carrier, WebhookRefused, WebhookRequest
from gateway.core.stats import CallStats
from gateway.http.urls import carrier_of, public_base_url
from gateway.observability import metrics
from gateway.observability.reports import call_summary
from gateway.outbound.calls import OutboundCall
from gateway.state import STATE, GatewayState

log = structlog.get_logger("gateway.status")


async def status_callback(request: web.Request) -> web.Response:
    """POST /status/{carrier}: the call's progress."""
    return await _callback(request, amd=False)


async def amd_callback(request: web.Request) -> web.Response:
    """POST /status/{carrier}/amd: answering-machine detection's verdict."""
    return await _callback(request, amd=True)


async def _callback(request: web.Request, *, amd: bool) -> web.Response:
    state = request.app[STATE]
    carrier = carrier_of(state, request)
    body = await request.read()
    form: MultiDict[str] = MultiDict()
    if request.content_type == "application/x-www-form-urlencoded":
        form = MultiDict(await request.post())
    webhook = WebhookRequest(method=request.method, url=public_base_url(state, request) + request.path_qs,
                             headers=request.headers, form=form, query=request.query, body=body)
    if not carrier.verify_webhook(webhook):
        metrics.STATUS_CALLBACKS.labels("forbidden").inc()
        log.warning("status_callback_signature_invalid", remote=request.remote, carrier=carrier.name)
        raise web.HTTPForbidden(text="invalid webhook signature\n")
    try:
        progress = carrier.call_progress(webhook)
        if amd and progress.answered_by is None:
            raise WebhookRefused("bad_request", "AnsweredBy is missing")
    except WebhookRefused as exc:
        metrics.STATUS_CALLBACKS.labels("bad_request").inc()
        log.warning("status_callback_refused", carrier=carrier.name, reason=str(exc))
        raise web.HTTPBadRequest(text=f"{exc}\n") from None
    record = state.outbound.get(request.query.get("call")) or state.outbound.get(progress.call_id)
    if record is None or record.carrier != carrier.name or record.call_sid not in (None, progress.call_id):
        metrics.STATUS_CALLBACKS.labels("unknown_call").inc()  # another replica's, or forgotten: nothing to do
        log.info("status_callback_unknown_call", carrier=carrier.name, call_sid=progress.call_id)
        return web.Response(status=204)
    if record.call_sid is None:  # before the carrier's answer to the call's creation
        state.outbound.bind(record, progress.call_id)
    metrics.STATUS_CALLBACKS.labels("accepted").inc()
    if amd:
        assert progress.answered_by is not None
        record.amd(progress.answered_by, progress.answered_by_detail)
        log.info("outbound_answered_by", call_sid=record.call_sid, outbound_id=record.oid,
                 answered_by=progress.answered_by, detail=progress.answered_by_detail, live=record.live)
        if record.session is not None:
            await record.session.answered_by(progress.answered_by)
    elif record.progress(progress.status, progress.duration_s, progress.sequence):
        finished(state, record, carrier)
    else:
        log.info("outbound_call_progress", call_sid=record.call_sid, status=progress.status)
    return web.Response(status=204)


def finished(state: GatewayState, record: OutboundCall, carrier: Carrier) -> None:
    """The call's final status came: counted; without a stream here, its place is freed and its summary made."""
    assert record.result is not None
    metrics.OUTBOUND_CALLS.labels(record.result).inc()
    state.outbound.finished(record)
    log.info("outbound_call_finished", call_sid=record.call_sid, outbound_id=record.oid, result=record.result,
             duration_s=record.duration_s, answered_by=record.answered_by, streamed=record.streamed)
    if record.streamed:
        return
    state.release(record.oid)
    summary = call_summary(
        call_sid=record.call_sid, stream_sid=None, carrier=carrier.name, provider=state.upstream.provider,
        parameters={"from": record.from_number, "to": record.to},
        started_at=dt.datetime.fromisoformat(record.created_at), duration_s=0.0, outcome=record.result,
        reason=f"the placed call ended {record.status}, with no media stream",
        stats=CallStats(), carrier_errors=0, mask_numbers=state.settings.call_report_mask_numbers,
        agent=record.agent, outbound=record.describe())
    log.info("call_summary", **{k: v for k, v in summary.items() if k != "stream_sid"})
    state.reports.submit(summary)
