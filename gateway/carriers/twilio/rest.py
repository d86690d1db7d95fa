"""Live-call actions and placed calls over Twilio's REST API, through the twilio package's async client.

Every action (fall back, hang up, transfer) updates the live call with new TwiML (protocol-reference.md
§4.8). Updating a call interrupts its `<Connect><Stream>`, so this must happen before the gateway
closes the stream; closing first would let `<Connect>` fall through to a hang-up.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import encode_basic_auth
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from gateway.carriers.base import CallControlUnavailable
from gateway.carriers.twilio.settings import ACCOUNT_SID, TwilioSettings

REST_TIMEOUT_S = 5.0
_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")  # StatusCallbackEvent of a call we place


class _HttpClient(AsyncTwilioHttpClient):
    """The twilio package's aiohttp client, sending Basic auth as a header (aiohttp 3.14 deprecates `auth=`)."""

    async def request(self, method: str, url: str, params: Any = None, data: Any = None,
                      headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
                      timeout: float | None = None, allow_redirects: bool = False) -> Response:  # noqa: ASYNC109
        if auth is not None:
            headers = {**(headers or {}), "Authorization": encode_basic_auth(*auth)}
        return await super().request(method, url, params, data, headers, None, timeout, allow_redirects)


class TwilioRest:
    """Twilio REST calls for the whole process; one pooled HTTP session, opened at first use."""

    def __init__(self, settings: TwilioSettings, timeout_s: float = REST_TIMEOUT_S) -> None:
        self.settings = settings
        self._timeout_s = timeout_s
        self._http: _HttpClient | None = None

    def credentials(self, account_sid_hint: str | None) -> tuple[str, str, str] | None:
        """(username, password, account SID) for the REST API, or None when they are not configured.

        The auth token is required even with an API key: it is what makes the webhook signed, and so
        what guarantees the CallSid we act on came from Twilio."""
        settings = self.settings
        if settings.auth_token is None:
            return None
        account = settings.account_sid or account_sid_hint
        if not account or not ACCOUNT_SID.match(account):
            return None
        if settings.api_key_sid and settings.api_key_secret:
            return settings.api_key_sid, settings.api_key_secret.reveal(), account
        return account, settings.auth_token.reveal(), account

    def _account(self, account_sid_hint: str | None) -> Any:
        """The twilio client's account resource, or CallControlUnavailable naming what to set."""
        creds = self.credentials(account_sid_hint)
        if creds is None:
            raise CallControlUnavailable("no Twilio REST credentials: set TWILIO_AUTH_TOKEN and TWILIO_ACCOUNT_SID "
                                         "(or TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET with them)")
        username, password, account = creds
        if self._http is None:
            self._http = _HttpClient(timeout=self._timeout_s)
        client = Client(username, password, account_sid=account, http_client=self._http)
        client.api.base_url = self.settings.api_base_url
        return client.api.v2010.accounts(account)

    async def update(self, call_sid: str, twiml: str | None = None, account_sid_hint: str | None = None, *,
                     status: str | None = None) -> None:
        """Replace the live call's TwiML, or set its `status` (completed hangs up, canceled stops the ringing).
        Raises CallControlUnavailable, the twilio package's TwilioRestException (an error answer),
        aiohttp.ClientError or TimeoutError."""
        if self.credentials(account_sid_hint) is not None and not _CALL_SID.match(call_sid):
            raise CallControlUnavailable("the CallSid is not a Twilio call SID")
        account = self._account(account_sid_hint)
        fields: dict[str, str] = {"twiml": twiml} if twiml is not None else {"status": status or "completed"}
        async with asyncio.timeout(self._timeout_s):
            await account.calls(call_sid).update_async(**fields)

    async def create(self, *, to: str, from_: str, twiml: str, status_callback: str, timeout_s: int,
                     amd_callback: str | None = None) -> str:
        """Place a call (Calls resource, create) running `twiml` once answered, every progress event posted to
        `status_callback`; with `amd_callback`, answering-machine detection runs in the background (async
        AMD, to the end of a machine's greeting) and its result is posted there. Returns the CallSid.
        Raises as `update`."""
        account = self._account(None)
        amd: dict[str, str] = {}
        if amd_callback is not None:
            amd = {"machine_detection": "DetectMessageEnd", "async_amd": "true",
                   "async_amd_status_callback": amd_callback, "async_amd_status_callback_method": "POST"}
        async with asyncio.timeout(self._timeout_s):
            call = await account.calls.create_async(
                to=to, from_=from_, twiml=twiml, status_callback=status_callback, status_callback_method="POST",
                status_callback_event=list(STATUS_EVENTS), timeout=timeout_s, **amd)
        sid = str(call.sid or "")
        if not _CALL_SID.match(sid):
            raise ValueError("Twilio answered the call's creation without a call SID")
        return sid

    async def close(self) -> None:
        """Close the pooled HTTP session, if one was opened."""
        if self._http is not None:
            await self._http.close()
            self._http = None
