"""Microsoft Entra ID tokens for Azure OpenAI, fetched off the call path.

With `AZURE_OPENAI_AUTH=entra` (or `auto` and no key) the Realtime handshake carries
`Authorization: Bearer <token>` for the scope in `Upstream.entra_scope`. One provider per scope serves
the whole process: it fetches a token when the app starts (`token_refresher`, a cleanup context),
caches it, and refreshes it in the background `refresh_margin_s` before it expires (at half its life
for short-lived tokens), so a call only reads the cached token. A call that finds none (the first
fetch still running, or failing) wakes the refresher and waits for its next attempt, bounded by the
handshake timeout, then fails with `TokenUnavailable`, whose message never holds a token.

Each token is registered with the log redaction as it arrives; no log line names one. The credential
is azure-identity's `DefaultAzureCredential` (workload identity, managed identity, environment,
Azure CLI, ...), created at the first start; tests pass any object with an async `get_token(scope)`
returning `(token, expires_on)` (an `AccessToken`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import structlog

from gateway.config import Upstream
from gateway.observability.logging import register_secret

__all__ = ["EntraTokenProvider", "TokenUnavailable", "install_provider", "provider_for", "token_refresher"]

log = structlog.get_logger("gateway.entra")

REFRESH_MARGIN_S = 300.0  # refresh this long before `expires_on`
MIN_VALIDITY_S = 10.0  # a token expiring sooner than this is not handed out
FETCH_TIMEOUT_S = 60.0  # one get_token call (DefaultAzureCredential may try several sources)
RETRY_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # after failed fetches, then the last one repeated
MAX_ERROR_CHARS = 400


class AccessTokenLike(Protocol):
    token: str
    expires_on: int | float


class Credential(Protocol):
    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessTokenLike: ...


class TokenUnavailable(Exception):
    """No valid token could be had; the message says why and never holds a token."""


def _describe(exc: BaseException) -> str:
    """An azure-identity error on one line, bounded (DefaultAzureCredential lists every source tried)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return f"{type(exc).__name__}: {text}"


def _default_credential() -> Credential:
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential()


class EntraTokenProvider:
    """One scope's token, fetched ahead of need and cached; see the module docstring."""

    def __init__(
        self,
        scope: str,
        credential: Credential | None = None,
        *,
        refresh_margin_s: float = REFRESH_MARGIN_S,
        min_validity_s: float = MIN_VALIDITY_S,
        min_refresh_s: float = 1.0,
        fetch_timeout_s: float = FETCH_TIMEOUT_S,
        retry_backoff_s: tuple[float, ...] = RETRY_BACKOFF_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.scope = scope
        self._given_credential = credential  # None: DefaultAzureCredential, created at the first fetch
        self._credential: Credential | None = credential
        self.refresh_margin_s = refresh_margin_s
        self.min_validity_s = min_validity_s
        self.min_refresh_s = min_refresh_s
        self.fetch_timeout_s = fetch_timeout_s
        self.retry_backoff_s = retry_backoff_s
        self._clock = clock
        self._token: str | None = None
        self._expires_on = 0.0
        self.fetches = 0  # get_token calls completed, successful or not
        self.last_error: str | None = None
        self._failures = 0  # in a row
        self._fetching = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._attempted: asyncio.Condition | None = None

    # --- what a call uses ---------------------------------------------------------------------------

    def cached(self) -> str | None:
        """The cached token if it is valid for at least `min_validity_s`, else None."""
        if self._token and self._expires_on - self._clock() > self.min_validity_s:
            return self._token
        return None

    async def token(self, wait_s: float) -> str:
        """The cached token; with none valid, wait up to `wait_s` for the refresher's next attempt."""
        token = self.cached()
        if token is not None:
            return token
        self.start()
        assert self._wake is not None and self._attempted is not None
        attempted = self._attempted
        async with attempted:
            seen = self.fetches
            if not self._fetching:
                self._wake.set()  # a refresher waiting (out a backoff, say) tries again now
            try:
                async with asyncio.timeout(wait_s):
                    # The attempt running now, or the next one, whatever its outcome.
                    await attempted.wait_for(lambda: self.fetches > seen)
            except TimeoutError:
                why = f"; the last attempt failed: {self.last_error}" if self.last_error else ""
                raise TokenUnavailable(f"no token within {wait_s:g} s{why}") from None
        token = self.cached()
        if token is None:
            raise TokenUnavailable(self.last_error or "the credential returned an expired token")
        return token

    # --- the refresher ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background refresher (idempotent); the first fetch begins at once."""
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._loop is loop:
            return
        self._loop = loop
        self._wake = asyncio.Event()
        self._attempted = asyncio.Condition()
        self._fetching = False
        self._task = asyncio.create_task(self._run(), name="entra-token-refresher")

    async def close(self) -> None:
        """Stop the refresher and close the credential it created; the cache is dropped."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        credential, self._credential = self._credential, self._given_credential
        if credential is not None and credential is not self._given_credential:  # ours: close its sessions
            with contextlib.suppress(Exception):
                await credential.close()  # type: ignore[attr-defined]
        self._token, self._expires_on, self._fetching = None, 0.0, False

    def _credential_now(self) -> Credential:
        if self._credential is None:
            self._credential = _default_credential()
        return self._credential

    async def _fetch(self) -> float:
        """One attempt; the seconds until the next one."""
        assert self._attempted is not None
        self._fetching = True
        try:
            credential = self._credential_now()
            access = await asyncio.wait_for(credential.get_token(self.scope), self.fetch_timeout_s)
            token, expires_on = str(access.token), float(access.expires_on)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an azure-identity error, a timeout, a broken credential
            self._failures += 1
            self.last_error = (f"no answer in {self.fetch_timeout_s:g} s" if isinstance(exc, TimeoutError)
                               else _describe(exc))
            delay = self.retry_backoff_s[min(self._failures, len(self.retry_backoff_s)) - 1]
            valid_for = self._expires_on - self._clock() if self._token else 0.0
            log.warning("entra_token_failed", scope=self.scope, error=self.last_error, retry_in_s=delay,
                        cached_token_valid_s=round(max(0.0, valid_for), 1))
            return delay
        else:
            register_secret(token)  # before anything could log it
            self._token, self._expires_on = token, expires_on
            self._failures, self.last_error = 0, None
            lifetime = expires_on - self._clock()
            delay = max(self.min_refresh_s, lifetime - self.refresh_margin_s, lifetime / 2)
            log.info("entra_token_acquired", scope=self.scope, expires_in_s=round(lifetime),
                     refresh_in_s=round(delay, 1))
            return delay
        finally:
            self.fetches += 1
            self._fetching = False
            async with self._attempted:
                self._attempted.notify_all()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            delay = await self._fetch()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()  # a call that found no valid token wakes it early


# --- one provider per scope for the process -----------------------------------------------------------

_providers: dict[str, EntraTokenProvider] = {}


def provider_for(scope: str) -> EntraTokenProvider:
    """The process's provider for `scope`, created (with DefaultAzureCredential) on first use."""
    provider = _providers.get(scope)
    if provider is None:
        provider = _providers[scope] = EntraTokenProvider(scope)
    return provider


def install_provider(provider: EntraTokenProvider | None, scope: str | None = None) -> None:
    """Use `provider` for its scope (tests, or a credential of your own); None with `scope`: forget it."""
    if provider is None:
        if scope is not None:
            _providers.pop(scope, None)
        return
    _providers[provider.scope] = provider


def token_refresher(upstream: Upstream) -> Callable[[Any], AsyncIterator[None]]:
    """An aiohttp cleanup context: with an Entra ID upstream, fetch the token when the app starts and
    keep it fresh until the app stops. Nothing for any other upstream.

        app.cleanup_ctx.append(token_refresher(settings.upstream))
    """

    async def refresh_entra_token(app: Any) -> AsyncIterator[None]:
        if not upstream.entra_scope:
            yield
            return
        provider = provider_for(upstream.entra_scope)
        provider.start()
        try:
            yield
        finally:
            await provider.close()

    return refresh_entra_token
