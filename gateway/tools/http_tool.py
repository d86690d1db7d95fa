"""HTTP tools: the function's arguments become one HTTP request; its answer, the function's output.

`{param}` placeholders of the URL take their argument URL-encoded (a path segment of "." or ".." is
refused, it would walk the path); the other arguments go in the query (GET, DELETE) or as a JSON body
(POST, PUT, PATCH). The call's context goes along as headers: X-Call-Id, X-Call-Carrier, X-Call-From,
X-Call-To. Redirects are not followed (a redirect could carry the tool's credentials elsewhere). A
2xx answer's body, up to `max_response_bytes`, is the output; anything else is the tool's
`error_message` for the model, with a bounded outcome label: http_error, timeout, too_large, failed.
Nothing here logs a URL, a header or an argument.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import structlog
from yarl import URL

from gateway import __version__
from gateway.env import Secret
from gateway.tools.spec import HttpTool

log = structlog.get_logger("gateway.tools")

CONNECTION_LIMIT = 100  # connections the process keeps to every tool endpoint together
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class CallContext:
    """Who the call is, sent to HTTP tools as headers (only what is known)."""

    call_id: str | None = None
    carrier: str | None = None
    from_number: str | None = None
    to_number: str | None = None

    def headers(self) -> dict[str, str]:
        pairs = (("X-Call-Id", self.call_id), ("X-Call-Carrier", self.carrier), ("X-Call-From", self.from_number),
                 ("X-Call-To", self.to_number))
        return {name: value for name, value in pairs if value and "\n" not in value and "\r" not in value}


@dataclass(frozen=True)
class HttpOutcome:
    outcome: str  # ok, http_error, timeout, too_large, failed
    output: str


class BadArguments(ValueError):
    """Arguments that fit the schema but cannot make a request (a path segment of "." or "..")."""


def error_output(message: str, **extra: Any) -> str:
    return orjson.dumps({"error": message, **extra}).decode()


def _text(value: Any) -> str:
    """An argument as it goes into a URL: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def build_request(tool: HttpTool, arguments: dict[str, Any]) -> tuple[URL, dict[str, str] | None, bytes | None]:
    """(URL, query parameters, JSON body) for these arguments."""
    url = tool.url
    for name in tool.placeholders:
        value = _text(arguments.get(name, ""))
        if value in ("", ".", ".."):
            raise BadArguments(f"{name} must not be empty, '.' or '..'")
        url = url.replace("{" + name + "}", quote(value, safe=""))
    rest = {k: v for k, v in arguments.items() if k not in tool.placeholders}
    if tool.method in _BODY_METHODS:
        return URL(url, encoded=True), None, orjson.dumps(rest)
    return URL(url, encoded=True), {k: _text(v) for k, v in rest.items()} or None, None


class HttpToolClient:
    """One aiohttp.ClientSession for the process (opened at first use, closed at shutdown)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTION_LIMIT),
                headers={"User-Agent": f"voice-gateway/{__version__}"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, tool: HttpTool, arguments: dict[str, Any], context: CallContext) -> HttpOutcome:
        """Run the tool. Raises BadArguments before any request; never raises for the endpoint's faults."""
        url, params, body = build_request(tool, arguments)
        headers = {**context.headers(),
                   **{k: v.reveal() if isinstance(v, Secret) else v for k, v in tool.headers}}
        if body is not None:
            headers["Content-Type"] = "application/json"
        failure = error_output(tool.error_message)
        try:
            async with asyncio.timeout(tool.timeout_s):
                async with self._client().request(tool.method, url, params=params, data=body, headers=headers,
                                                  allow_redirects=False) as response:
                    status = response.status
                    if not 200 <= status < 300:
                        log.warning("tool_http_error", tool=tool.name, status=status)
                        return HttpOutcome("http_error", error_output(tool.error_message, status=status))
                    data = await _read_capped(response, tool.max_response_bytes)
        except TimeoutError:
            log.warning("tool_timeout", tool=tool.name, timeout_s=tool.timeout_s)
            return HttpOutcome("timeout", failure)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            log.warning("tool_request_failed", tool=tool.name, error=type(exc).__name__)
            return HttpOutcome("failed", failure)
        if data is None:
            log.warning("tool_response_too_large", tool=tool.name, max_response_bytes=tool.max_response_bytes)
            return HttpOutcome("too_large", failure)
        text = data.decode("utf-8", errors="replace").strip()
        return HttpOutcome("ok", text or orjson.dumps({"ok": True, "status": status}).decode())


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes | None:
    """The body, or None when it is longer than `cap` bytes (reading stops there)."""
    if response.content_length is not None and response.content_length > cap:
        return None
    data = bytearray()
    async for chunk in response.content.iter_chunked(16 * 1024):
        data += chunk
        if len(data) > cap:
            with contextlib.suppress(Exception):
                response.close()
            return None
    return bytes(data)
