"""Live-call actions over SignalWire's Compatibility (LaML) REST API, with aiohttp.

One documented endpoint: `POST {base}/api/laml/2010-04-01/Accounts/{ProjectID}/Calls/{CallSid}`,
form-encoded, Basic auth `ProjectID:APIToken`, where `{base}` is the Space's own host
(`https://<space>.signalwire.com`). Hanging up sends the documented `Status=completed`. Falling back
and transferring send the new cXML inline as `Twiml`: SignalWire's API spec listed the inline document
(`Laml`, with `Twiml` as its alias, 11 to 4000 characters) until January 2026, when it was commented out
"pending verification"; it is what Twilio-compatible clients send. Updating a call interrupts its
`<Connect><Stream>`, so this must happen before the gateway closes the stream.
"""

from __future__ import annotations

import aiohttp
from aiohttp import encode_basic_auth

from gateway.carriers.base import CallControlUnavailable
from gateway.carriers.signalwire.settings import UUID, SignalWireSettings

REST_TIMEOUT_S = 5.0
API_PATH = "/api/laml/2010-04-01/Accounts/{project}/Calls/{call}"


class SignalWireRestError(Exception):
    """SignalWire answered an update with an error status. The message holds no secret."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"SignalWire REST API answered HTTP {status}: {detail}")
        self.status = status


class SignalWireRest:
    """SignalWire REST calls for the whole process: one pooled HTTP session, opened at first use."""

    def __init__(self, settings: SignalWireSettings, timeout_s: float = REST_TIMEOUT_S) -> None:
        self.settings = settings
        self._timeout_s = timeout_s
        self._http: aiohttp.ClientSession | None = None

    def endpoint(self, call_sid: str) -> tuple[str, str] | None:
        """(the call's URL, the Authorization header), or None when REST is not configured.

        The Signing Key is required as well: it is what makes the webhook signed, and so what
        guarantees the CallSid we act on came from SignalWire."""
        s = self.settings
        base = s.rest_base_url
        if s.signing_key is None or s.project_id is None or s.api_token is None or base is None:
            return None
        url = base + API_PATH.format(project=s.project_id, call=call_sid)
        return url, encode_basic_auth(s.project_id, s.api_token.reveal())

    async def update(self, call_sid: str, *, twiml: str | None = None, status: str | None = None) -> None:
        """Replace the live call's cXML (`twiml`) or set its `status` ("completed" hangs up). Raises
        CallControlUnavailable before any request, SignalWireRestError for an error answer,
        aiohttp.ClientError or TimeoutError."""
        endpoint = self.endpoint(call_sid)
        if endpoint is None:
            raise CallControlUnavailable("no SignalWire REST credentials (SIGNALWIRE_SIGNING_KEY, "
                                         "SIGNALWIRE_SPACE_URL, SIGNALWIRE_PROJECT_ID and SIGNALWIRE_API_TOKEN)")
        if not UUID.match(call_sid):  # also keeps the path free of anything but a UUID
            raise CallControlUnavailable("the CallSid is not a SignalWire call id (a UUID)")
        form = {"Twiml": twiml} if twiml is not None else {"Status": status or "completed"}
        url, authorization = endpoint
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_s))
        headers = {"Authorization": authorization, "Accept": "application/json"}
        async with self._http.post(url, data=form, headers=headers, allow_redirects=False) as resp:
            if resp.status >= 300:
                text = (await resp.text(errors="replace"))[:200]
                raise SignalWireRestError(resp.status, " ".join(text.split()) or resp.reason or "")

    async def close(self) -> None:
        """Close the pooled HTTP session, if one was opened."""
        if self._http is not None:
            await self._http.close()
            self._http = None
