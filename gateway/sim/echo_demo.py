"""The offline demo's order API: what the order-status tool of deploy/tools.example.yaml calls when the
gateway runs with no upstream (it serves GET /demo/orders/{order_id} then, and only then)."""

from __future__ import annotations

import zlib

from aiohttp import web

STATUSES = ("received", "packed", "shipped", "out for delivery", "delivered")


async def demo_order(request: web.Request) -> web.Response:
    """A made-up, stable status for any order number of 3 to 12 digits; 404 for anything else."""
    order_id = request.match_info["order_id"]
    if not (order_id.isdigit() and 3 <= len(order_id) <= 12):
        return web.json_response({"error": f"no order {order_id[:20]!r}"}, status=404)
    n = zlib.crc32(order_id.encode())
    status = STATUSES[n % len(STATUSES)]
    eta_days = 0 if status == "delivered" else len(STATUSES) - 1 - STATUSES.index(status)
    return web.json_response({"order_id": order_id, "status": status, "items": 1 + n % 3, "eta_days": eta_days})
