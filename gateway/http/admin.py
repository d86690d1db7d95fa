"""Admin endpoints, behind a bearer token when ADMIN_TOKEN is set (compared in constant time)."""

from __future__ import annotations

import hmac

from aiohttp import web

from gateway.state import STATE


def authorized(request: web.Request) -> bool:
    token = request.app[STATE].settings.admin_token
    if token is None:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.reveal().encode())


async def list_calls(request: web.Request) -> web.Response:
    """GET /calls: the live calls with their running figures."""
    if not authorized(request):
        raise web.HTTPUnauthorized(text="a valid bearer token is required\n",
                                   headers={"WWW-Authenticate": 'Bearer realm="gateway"'})
    state = request.app[STATE]
    calls = [call.snapshot() for call in list(state.calls)]
    return web.json_response({"active": len(calls), "draining": state.draining, "calls": calls})
