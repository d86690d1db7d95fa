"""Live-call actions over Vonage's Voice REST API, with aiohttp.

One documented endpoint, `PUT {base}/v1/calls/{uuid}` ("Modify an in progress call", the Voice API
reference at https://developer.vonage.com/en/api/voice#updateCall; the SDKs' `hangup` and
`transfer_call_ncco` send exactly these bodies):

- `{"action": "hangup"}` ends the call. The WebSockets guide recommends it over closing the socket, which
  raises a `disconnected` event (and the NCCO's fallback) instead;
- `{"action": "transfer", "destination": {"type": "ncco", "ncco": [...]}}` moves the call to an inline NCCO
  (the fallback: a `talk`, or a `connect` to a number; a transfer: a `connect` to a number or SIP URI).
  Any 2xx answer is success; anything else raises VonageRestError with the start of the answer's body.

And `PUT {base}/v1/calls/{uuid}/dtmf` with `{"digits": "..."}` plays keys into the call ("Play DTMF into a
call", https://developer.vonage.com/en/voice/voice-api/code-snippets/controlling-media/play-dtmf-into-a-call;
the Node SDK's `voice.playDTMF`): the call, and its WebSocket leg, go on.

Authentication is an application JWT in `Authorization: Bearer`: RS256 with the application's private key,
claims `application_id`, `iat`, `jti` and `exp` (15 minutes, as the SDKs' `JwtClient` does), a fresh one per
request ("Authentication", https://developer.vonage.com/en/getting-started/concepts/authentication#json-web-tokens).

Which host: the answer webhook's `region_url`, "the regional API endpoint which should be used to control the
call" (Webhooks reference), when the stream carried one of Vonage's API hosts back and VONAGE_API_BASE_URL is
left at its default; otherwise VONAGE_API_BASE_URL.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import aiohttp
import jwt

from gateway.carriers.base import CallControlUnavailable
from gateway.carriers.vonage.settings import API_BASE_URL, VonageSettings
from gateway.carriers.vonage.webhook import REGION_URL, UUID

REST_TIMEOUT_S = 5.0
CALL_PATH = "/v1/calls/{call}"
JWT_TTL_S = 15 * 60


class VonageRestError(Exception):
    """Vonage answered with an error status. The message holds no secret."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Vonage Voice API answered HTTP {status}: {detail}")
        self.status = status


def application_jwt(settings: VonageSettings, now: float | None = None) -> str:
    """A fresh application JWT for the REST API. CallControlUnavailable when no key is configured."""
    if settings.application_id is None or settings.private_key is None:
        raise CallControlUnavailable("no Vonage REST credentials (VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY)")
    iat = int(time.time() if now is None else now)
    claims = {"application_id": settings.application_id, "iat": iat, "jti": str(uuid.uuid4()),
              "exp": iat + JWT_TTL_S}
    return jwt.encode(claims, settings.private_key.reveal(), algorithm="RS256", headers={"typ": "JWT"})


class VonageRest:
    """Vonage REST calls for the whole process: one pooled HTTP session, opened at first use."""

    def __init__(self, settings: VonageSettings, timeout_s: float = REST_TIMEOUT_S) -> None:
        self.settings = settings
        self._timeout_s = timeout_s
        self._http: aiohttp.ClientSession | None = None

    def base_url(self, region_url: str | None) -> str:
        """The host to control a call on: its region's, when known and the base URL is not overridden."""
        base = self.settings.api_base_url
        if base == API_BASE_URL and region_url and REGION_URL.match(region_url):
            return region_url
        return base

    def endpoint(self, call_uuid: str, region_url: str | None = None) -> tuple[str, str]:
        """(the call's URL, the Authorization header). Raises CallControlUnavailable when the application id
        or its key is not set, or when `call_uuid` is not a Vonage call uuid."""
        if not UUID.match(call_uuid):  # also keeps the path free of anything but a UUID
            raise CallControlUnavailable("the call id is not a Vonage call uuid (a UUID)")
        token = application_jwt(self.settings)
        return self.base_url(region_url) + CALL_PATH.format(call=call_uuid), f"Bearer {token}"

    async def update(self, call_uuid: str, body: dict[str, Any], region_url: str | None = None,
                     path: str = "") -> None:
        """PUT `body` on the live call (or on its sub-resource `path`, e.g. /dtmf). Raises
        CallControlUnavailable before any request, VonageRestError for an error answer, aiohttp.ClientError or
        TimeoutError."""
        url, authorization = self.endpoint(call_uuid, region_url)
        url += path
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_s))
        headers = {"Authorization": authorization, "Accept": "application/json"}
        async with self._http.put(url, json=body, headers=headers, allow_redirects=False) as resp:
            if resp.status >= 300:
                text = (await resp.text(errors="replace"))[:200]
                raise VonageRestError(resp.status, " ".join(text.split()) or resp.reason or "")

    async def hang_up(self, call_uuid: str, region_url: str | None = None) -> None:
        """End the live call."""
        await self.update(call_uuid, {"action": "hangup"}, region_url)

    async def transfer_ncco(self, call_uuid: str, ncco: list[dict[str, Any]], region_url: str | None = None) -> None:
        """Move the live call to `ncco` (it leaves the WebSocket, which Vonage then closes)."""
        await self.update(call_uuid, {"action": "transfer", "destination": {"type": "ncco", "ncco": ncco}},
                          region_url)

    async def send_dtmf(self, call_uuid: str, digits: str, region_url: str | None = None) -> None:
        """Play `digits` (0-9, *, #) into the live call. Same errors as `update`; a ValueError for anything
        else, before any request."""
        if not digits or any(key not in "0123456789*#" for key in digits):
            raise ValueError("digits must be 0-9, * or #")
        await self.update(call_uuid, {"digits": digits}, region_url, path="/dtmf")

    async def close(self) -> None:
        """Close the pooled HTTP session, if one was opened."""
        if self._http is not None:
            await self._http.close()
            self._http = None
