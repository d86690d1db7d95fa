"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.observability import metrics
from gateway.state import STATE


async def healthz(request: web.Request) -> web.Response:
    """Liveness: green while the process serves, draining included."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 503 while draining, so the load balancer stops sending new calls."""
    state = request.app[STATE]
    if state.draining:
        return web.json_response({"status": "draining", "active_calls": len(state.calls)}, status=503)
    return web.json_response({"status": "ready", "active_calls": len(state.calls)})


def metrics_handler(state_key: web.AppKey) -> web.Handler:  # type: ignore[type-arg]
    async def handler(request: web.Request) -> web.Response:
        state = request.app[state_key]
        for call in list(state.calls):
            call.flush_metrics()
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler
