"""The public URLs the carriers use to reach us, and which carrier a request is for."""

from __future__ import annotations

from aiohttp import web

from gateway.carriers.base import Carrier
from gateway.carriers.registry import DEFAULT_CARRIER
from gateway.state import GatewayState


def public_base_url(state: GatewayState, request: web.Request) -> str:
    """The URL the carrier used to reach us: the configured PUBLIC_URL, else what the request says."""
    if state.settings.public_url:
        return state.settings.public_url
    proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{proto}://{host}"


def websocket_url(state: GatewayState, request: web.Request, path: str) -> str:
    """The public ws(s):// URL of `path` on this gateway."""
    base = public_base_url(state, request)
    scheme, _, rest = base.partition("://")
    return ("wss" if scheme == "https" else "ws") + "://" + rest + path


def carrier_of(state: GatewayState, request: web.Request) -> Carrier:
    """The carrier a route serves: `/voice/{carrier}`, `/media/{carrier}`, or the default for the bare
    `/voice` and `/media` kept for numbers configured before carriers had their own routes."""
    name = request.match_info.get("carrier", DEFAULT_CARRIER)
    carrier = state.carriers.get(name)
    if carrier is None:
        raise web.HTTPNotFound(text=f"unknown carrier {name[:40]!r}; this gateway serves: "
                               f"{', '.join(sorted(state.carriers))}\n")
    return carrier
