"""Live-call actions over Plivo's Call API, with aiohttp.

Two documented endpoints of the same resource, `{base}/v1/Account/{auth_id}/Call/{call_uuid}/`, with
Basic auth `auth_id:auth_token` (what the `plivo` package's client sends):

- `DELETE` hangs the call up (the SDK's `calls.hangup` / `calls.delete`; Plivo answers 204);
- `POST` with `legs`, `aleg_url`, `aleg_method` transfers it: Plivo fetches new XML from `aleg_url` and
  runs it on the call (the SDK's `calls.transfer`, sent as a JSON body like the SDK does). The transfer
  takes a URL, never inline XML: `carrier.PlivoCarrier` gives it the URL of a control document the
  gateway serves (`http.control`).
"""

from __future__ import annotations

import aiohttp
from aiohttp import encode_basic_auth

from gateway.carriers.base import CallControlUnavailable
from gateway.carriers.plivo.settings import PlivoSettings
from gateway.carriers.plivo.webhook import UUID

REST_TIMEOUT_S = 5.0
CALL_PATH = "/v1/Account/{auth_id}/Call/{call}/"


class PlivoRestError(Exception):
    """Plivo answered with an error status. The message holds no secret."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Plivo REST API answered HTTP {status}: {detail}")
        self.status = status


class PlivoRest:
    """Plivo REST calls for the whole process: one pooled HTTP session, opened at first use."""

    def __init__(self, settings: PlivoSettings, timeout_s: float = REST_TIMEOUT_S) -> None:
        self.settings = settings
        self._timeout_s = timeout_s
        self._http: aiohttp.ClientSession | None = None

    def endpoint(self, call_uuid: str) -> tuple[str, str]:
        """(the call's URL, the Authorization header). Raises CallControlUnavailable when the Auth ID or
        the Auth Token is not set (the token is also what makes the webhook signed, and so what guarantees
        the CallUUID we act on came from Plivo), or when `call_uuid` is not a UUID."""
        s = self.settings
        if s.auth_id is None or s.auth_token is None:
            raise CallControlUnavailable("no Plivo REST credentials (PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN)")
        if not UUID.match(call_uuid):  # also keeps the path free of anything but a UUID
            raise CallControlUnavailable("the call id is not a Plivo CallUUID (a UUID)")
        url = s.api_base_url + CALL_PATH.format(auth_id=s.auth_id, call=call_uuid)
        return url, encode_basic_auth(s.auth_id, s.auth_token.reveal())

    async def _request(self, method: str, call_uuid: str, body: dict[str, str] | None = None) -> None:
        url, authorization = self.endpoint(call_uuid)
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_s))
        headers = {"Authorization": authorization, "Accept": "application/json"}
        async with self._http.request(method, url, json=body, headers=headers, allow_redirects=False) as resp:
            if resp.status >= 300:
                text = (await resp.text(errors="replace"))[:200]
                raise PlivoRestError(resp.status, " ".join(text.split()) or resp.reason or "")

    async def hang_up(self, call_uuid: str) -> None:
        """End the live call. Raises CallControlUnavailable before any request, PlivoRestError for an error
        answer, aiohttp.ClientError or TimeoutError."""
        await self._request("DELETE", call_uuid)

    async def transfer(self, call_uuid: str, aleg_url: str, method: str = "POST") -> None:
        """Have Plivo run the XML at `aleg_url` on the live call (its A leg). Same errors as `hang_up`."""
        if not aleg_url.startswith(("https://", "http://")):
            raise ValueError("aleg_url must be an absolute http(s) URL")
        await self._request("POST", call_uuid, {"legs": "aleg", "aleg_url": aleg_url, "aleg_method": method})

    async def close(self) -> None:
        """Close the pooled HTTP session, if one was opened."""
        if self._http is not None:
            await self._http.close()
            self._http = None
