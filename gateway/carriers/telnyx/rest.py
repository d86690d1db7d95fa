"""Live-call actions over Telnyx's TeXML REST API, with aiohttp.

One documented endpoint (TX-U, "Update call"): `POST {base}/v2/texml/Accounts/{account_sid}/Calls/{call_sid}`,
form-encoded with CamelCase keys, `Authorization: Bearer <API key>`. `Status=completed` ends the call;
`Texml=<document>` replaces the TeXML the call is running with new TeXML given inline, which interrupts its
`<Connect><Stream>`: that is how the gateway falls back (apologise and hang up, or dial a number) and
transfers, before it closes the stream. `{call_sid}` is the call's Call Control id (`v3:...`, the stream's
`start.call_control_id`), `{account_sid}` the account's UUID (the stream's `start.user_id`).

Telnyx's Call Control v2 API (`/v2/calls/{call_control_id}/actions/hangup|transfer|speak`) acts on the
same ids, but a TeXML call is driven by its document: replacing the document keeps one owner of the call.
"""

from __future__ import annotations

import aiohttp

from gateway.carriers.base import CallControlUnavailable
from gateway.carriers.telnyx.settings import TelnyxSettings
from gateway.carriers.telnyx.webhook import account_id_valid, call_control_id_valid

REST_TIMEOUT_S = 5.0
CALL_PATH = "/v2/texml/Accounts/{account}/Calls/{call}"


class TelnyxRestError(Exception):
    """Telnyx answered with an error status. The message holds no secret."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Telnyx REST API answered HTTP {status}: {detail}")
        self.status = status


class TelnyxRest:
    """Telnyx REST calls for the whole process: one pooled HTTP session, opened at first use."""

    def __init__(self, settings: TelnyxSettings, timeout_s: float = REST_TIMEOUT_S) -> None:
        self.settings = settings
        self._timeout_s = timeout_s
        self._http: aiohttp.ClientSession | None = None

    def endpoint(self, call_id: str, account_id: str | None) -> tuple[str, str]:
        """(the call's URL, the Authorization header). Raises CallControlUnavailable when the API key is not
        set, or the public key (it is what makes the webhook signed, and so what guarantees the call id we
        act on came from Telnyx), or when the ids are not Telnyx's (this also keeps the path clean)."""
        s = self.settings
        if s.api_key is None or s.verify_key is None:
            raise CallControlUnavailable("no Telnyx call control (TELNYX_API_KEY, with TELNYX_PUBLIC_KEY so that "
                                         "the call acted on comes from a signed webhook)")
        if not call_control_id_valid(call_id):
            raise CallControlUnavailable("the call id is not a Telnyx Call Control id (v3:...)")
        if account_id is None or not account_id_valid(account_id):
            raise CallControlUnavailable("the stream's start carried no Telnyx account id (user_id, a UUID)")
        url = s.api_base_url + CALL_PATH.format(account=account_id, call=call_id)
        return url, "Bearer " + s.api_key.reveal()

    async def update(self, call_id: str, account_id: str | None, *, texml: str | None = None,
                     status: str | None = None) -> None:
        """Replace the live call's TeXML (`texml`) or set its `status` ("completed" hangs up). Raises
        CallControlUnavailable before any request, TelnyxRestError for an error answer, aiohttp.ClientError
        or TimeoutError."""
        url, authorization = self.endpoint(call_id, account_id)
        form = {"Texml": texml} if texml is not None else {"Status": status or "completed"}
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout_s))
        headers = {"Authorization": authorization, "Accept": "application/json"}
        async with self._http.post(url, data=form, headers=headers, allow_redirects=False) as resp:
            if resp.status >= 300:
                text = (await resp.text(errors="replace"))[:300]
                key = self.settings.api_key.reveal() if self.settings.api_key else ""
                if key:
                    text = text.replace(key, "***")
                raise TelnyxRestError(resp.status, " ".join(text.split())[:200] or resp.reason or "")

    async def hang_up(self, call_id: str, account_id: str | None) -> None:
        """End the live call (`Status=completed`). Same errors as `update`."""
        await self.update(call_id, account_id, status="completed")

    async def close(self) -> None:
        """Close the pooled HTTP session, if one was opened."""
        if self._http is not None:
            await self._http.close()
            self._http = None
