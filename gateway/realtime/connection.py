"""Opening one Realtime WebSocket for a call, with the right URL and headers for the upstream.

Static credentials (API keys) are headers of `Upstream`; a Microsoft Entra ID token is read at connect
time from the process's token provider (`realtime/entra.py`), which keeps it fresh off the call path.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

from gateway import __version__
from gateway.config import Secret, Upstream
from gateway.realtime import entra

MAX_UPSTREAM_MESSAGE = 8 * 1024 * 1024  # a response.done with a long transcript stays well under this
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


NOT_RETRIED = frozenset({401, 403})  # the credentials are wrong: another attempt only costs time


class UpstreamConnectError(Exception):
    """The Realtime session could not be opened. The message is safe to log: no secrets, no query."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = 1


_AUTH_HINTS = {
    "entra": {401: "check the Entra ID identity: its tenant, and that it may use this resource",
              403: "the identity needs the Cognitive Services OpenAI User role on the resource"},
}
_KEY_HINTS = {401: "check the API key", 403: "the key may lack access to this model"}


def with_model(upstream: Upstream, model: str | None) -> Upstream:
    """The upstream for an agent running on `model` (None or the same: `upstream` itself). The model is the
    URL's `model` query parameter (OpenAI, Azure's GA route, most compatible servers) or, on Azure's
    preview route, its `deployment`."""
    if not model or model == upstream.model:
        return upstream
    parts = urlsplit(upstream.url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    key = "deployment" if any(name == "deployment" for name, _ in query) else "model"
    query = [(name, value) for name, value in query if name != key] + [(key, model)]
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
    return dataclasses.replace(upstream, url=url, model=model)


async def open_realtime(upstream: Upstream) -> ClientConnection:
    headers = [(name, value.reveal() if isinstance(value, Secret) else value) for name, value in upstream.headers]
    host = urlsplit(upstream.url).hostname or ""
    where = upstream.describe()
    if upstream.entra_scope:
        # The cached token; only while none is valid yet, this waits for the provider's next fetch.
        try:
            token = await entra.provider_for(upstream.entra_scope).token(upstream.connect_timeout_s)
        except entra.TokenUnavailable as exc:
            raise UpstreamConnectError(f"no Microsoft Entra ID token for {where}: {exc}") from None
        headers.append(("Authorization", f"Bearer {token}"))
    try:
        return await connect(
            upstream.url,
            additional_headers=headers,
            open_timeout=upstream.connect_timeout_s,
            close_timeout=1.0,
            compression=None,  # base64 audio barely compresses; deflate costs CPU per frame
            max_size=MAX_UPSTREAM_MESSAGE,
            max_queue=64,
            user_agent_header=f"voice-gateway/{__version__}",
            proxy=None if host in _LOOPBACK else True,
        )
    except websockets.InvalidStatus as exc:
        status = exc.response.status_code
        hint = {**_KEY_HINTS, **_AUTH_HINTS.get(upstream.auth, {}),
                404: "check the URL, model or deployment"}.get(status, "")
        raise UpstreamConnectError(f"{where} answered the handshake with HTTP {status}"
                                   + (f" ({hint})" if hint else ""), status=status) from None
    except TimeoutError:
        raise UpstreamConnectError(f"{where} did not complete the handshake in "
                                   f"{upstream.connect_timeout_s:g} s") from None
    except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
        raise UpstreamConnectError(f"cannot connect to {where}: {type(exc).__name__}: {exc}") from None


async def open_realtime_with_retries(
    upstream: Upstream, on_retry: Callable[[int, UpstreamConnectError, float], None] | None = None
) -> ClientConnection:
    """`open_realtime`, retried `upstream.connect_retries` times with exponential backoff; each attempt is
    bounded by the handshake timeout. A 401/403 is final. The error raised carries the attempts made."""
    attempt = 1
    while True:
        try:
            return await open_realtime(upstream)
        except UpstreamConnectError as exc:
            exc.attempts = attempt
            if attempt > upstream.connect_retries or exc.status in NOT_RETRIED:
                raise
            delay = upstream.retry_backoff_s * 2 ** (attempt - 1)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            attempt += 1
            await asyncio.sleep(delay)


FAST_SEND_HIGH_WATER = 64 * 1024


def send_text_now(conn: ClientConnection, data: bytes) -> bool:
    """Write one text message without awaiting, when nothing stands in the way; False: use `send`.

    `ClientConnection.send` enters an async context manager per message, which is a quarter of the
    cost of relaying a caller frame. When the connection is open, no fragmented message is being sent
    and the socket's write buffer is short, framing the message and writing it is all `send` would do.
    Anything else (back-pressure, closing) goes through `send`, which awaits and raises properly.
    """
    protocol = conn.protocol
    if (protocol.state is not State.OPEN or conn.send_in_progress is not None
            or conn.transport.get_write_buffer_size() > FAST_SEND_HIGH_WATER):
        return False
    protocol.send_text(data)
    conn.send_data()
    return True
