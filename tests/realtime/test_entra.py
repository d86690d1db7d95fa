"""Azure OpenAI with Microsoft Entra ID: a fake credential that counts fetches, a loopback Realtime
server that records the handshake's Authorization header. No network, no Azure."""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus
from typing import NamedTuple

import pytest
from websockets.asyncio.server import serve

from gateway.config import AZURE_ENTRA_SCOPE, Upstream, load_settings
from gateway.observability.logging import redact
from gateway.realtime import entra
from gateway.realtime.connection import UpstreamConnectError, open_realtime, open_realtime_with_retries


class AccessToken(NamedTuple):  # the shape of azure.core.credentials.AccessToken
    token: str
    expires_on: float


class FakeCredential:
    """An async credential: token n is `fake-entra-token-n-...`, valid `lifetime_s`; counts fetches.
    `fail` lists the fetch numbers (1-based) that raise; `gate` holds every fetch until it is set."""

    def __init__(self, lifetime_s: float = 3600.0, fail: tuple[int, ...] = (), gate: asyncio.Event | None = None):
        self.lifetime_s = lifetime_s
        self.fail = fail
        self.gate = gate
        self.calls: list[tuple[str, float]] = []  # (scope, when)
        self.issued: list[AccessToken] = []
        self.closed = False

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.calls.append((scopes[0], time.time()))
        if self.gate is not None:
            await self.gate.wait()
        n = len(self.calls)
        if n in self.fail:
            raise RuntimeError("ManagedIdentityCredential: no managed identity endpoint found")
        token = AccessToken(f"fake-entra-token-{n}-abcdefghijklmnop", time.time() + self.lifetime_s)
        self.issued.append(token)
        return token

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def install():
    """Install a provider for the Azure scope for one test; forgotten (and closed) afterwards."""
    installed: list[entra.EntraTokenProvider] = []

    def _install(credential: FakeCredential, **kwargs: float) -> entra.EntraTokenProvider:
        provider = entra.EntraTokenProvider(AZURE_ENTRA_SCOPE, credential, **kwargs)
        entra.install_provider(provider)
        installed.append(provider)
        return provider

    yield _install
    for provider in installed:
        entra.install_provider(None, provider.scope)


@pytest.fixture
async def realtime_server():
    """A loopback WebSocket server that records each handshake's Authorization header; `refuse`
    answers the handshake with that HTTP status instead."""
    seen: list[str | None] = []
    refuse: list[int] = []

    def process_request(connection, request):
        seen.append(request.headers.get("Authorization"))
        if refuse:
            return connection.respond(HTTPStatus(refuse[0]), "refused\n")
        return None

    async def handler(ws):
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/openai/v1/realtime?model=rt", seen, refuse


async def until(predicate, within_s: float = 3.0) -> None:
    """Poll `predicate` (the provider's state has no event of its own to wait on)."""
    async with asyncio.timeout(within_s):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def entra_upstream(url: str, **kwargs: float) -> Upstream:
    return Upstream(provider="azure", url=url, dialect="ga", auth="entra", entra_scope=AZURE_ENTRA_SCOPE,
                    **{"connect_timeout_s": 2.0, "connect_retries": 0, **kwargs})


async def test_one_fetch_at_start_serves_every_connect_and_the_header_reaches_the_server(install, realtime_server):
    url, seen, _ = realtime_server
    credential = FakeCredential()
    provider = install(credential)
    upstream = entra_upstream(url)
    refresher = entra.token_refresher(upstream)(object())
    await refresher.__anext__()  # the app starts: the first fetch begins
    try:
        first = await asyncio.gather(*(open_realtime(upstream) for _ in range(5)))  # while it may be in flight
        more = [await open_realtime(upstream) for _ in range(5)]
        for conn in first + more:
            await conn.close()
    finally:
        with pytest.raises(StopAsyncIteration):
            await refresher.__anext__()  # the app stops
    assert len(credential.calls) == 1 and credential.calls[0][0] == "https://cognitiveservices.azure.com/.default"
    assert seen == ["Bearer " + credential.issued[0].token] * 10
    assert provider.cached() is None and not credential.closed  # a given credential is the caller's to close


async def test_the_token_is_refreshed_in_the_background_before_it_expires(install):
    credential = FakeCredential(lifetime_s=1.0)
    # 1 s tokens: refreshed at max(1 - margin, half-life) = 0.5 s, never handed out in their last 0.05 s.
    provider = install(credential, refresh_margin_s=300.0, min_validity_s=0.05, min_refresh_s=0.01)
    provider.start()
    try:
        first = await provider.token(1.0)
        assert first == credential.issued[0].token
        await until(lambda: len(credential.calls) == 2)  # refreshed with no call asking
        assert credential.calls[1][1] < credential.issued[0].expires_on - 0.1  # well before the first expired
        await until(lambda: len(credential.issued) == 2)
        assert await provider.token(1.0) == credential.issued[1].token
        assert len(credential.calls) == 2
    finally:
        await provider.close()


def test_the_refresh_comes_five_minutes_before_expiry_by_default():
    provider = entra.EntraTokenProvider(AZURE_ENTRA_SCOPE, FakeCredential())
    assert provider.refresh_margin_s == 300.0
    lifetime = 3600.0  # an Azure token's usual life: refreshed after 55 minutes
    assert max(provider.min_refresh_s, lifetime - provider.refresh_margin_s, lifetime / 2) == 3300.0


async def test_a_failed_fetch_fails_the_connect_clearly_and_the_next_connect_retries(install, realtime_server):
    url, seen, _ = realtime_server
    credential = FakeCredential(fail=(1,))
    install(credential, retry_backoff_s=(30.0,))  # a long backoff: the next connect wakes the refresher
    upstream = entra_upstream(url)
    with pytest.raises(UpstreamConnectError) as info:
        await open_realtime_with_retries(upstream)
    message = str(info.value)
    assert message.startswith(f"no Microsoft Entra ID token for {upstream.describe()}: ")
    assert "RuntimeError: ManagedIdentityCredential: no managed identity endpoint found" in message
    assert info.value.status is None and seen == []  # no handshake without a token
    conn = await open_realtime(upstream)  # fetch 2 succeeds, at once, not after the 30 s backoff
    await conn.close()
    assert len(credential.calls) == 2 and seen == ["Bearer " + credential.issued[0].token]
    assert "fake-entra-token" not in message


async def test_a_failed_refresh_keeps_the_cached_token_until_the_next_one(install):
    credential = FakeCredential(lifetime_s=2.0, fail=(2,))
    provider = install(credential, min_validity_s=0.05, min_refresh_s=0.01, retry_backoff_s=(0.3,))
    provider.start()
    try:
        first = await provider.token(1.0)
        await until(lambda: provider.last_error is not None)  # the refresh at 1 s failed
        assert len(credential.calls) == 2
        assert await provider.token(1.0) == first  # the first token is still good: no wait, no fetch
        assert len(credential.calls) == 2
        await until(lambda: len(credential.issued) == 2)  # the retry 0.3 s later succeeded
        assert await provider.token(1.0) == credential.issued[1].token
        assert provider.last_error is None and len(credential.calls) == 3
    finally:
        await provider.close()


async def test_a_slow_first_fetch_is_awaited_with_a_bound(install, realtime_server):
    url, seen, _ = realtime_server
    gate = asyncio.Event()
    credential = FakeCredential(gate=gate)
    provider = install(credential)
    with pytest.raises(UpstreamConnectError, match=r"no Microsoft Entra ID token for .*: no token within 0.2 s"):
        await open_realtime(entra_upstream(url, connect_timeout_s=0.2))
    gate.set()
    conn = await open_realtime(entra_upstream(url))  # the same fetch, now answered
    await conn.close()
    assert len(credential.calls) == 1 and len(seen) == 1
    await provider.close()


async def test_a_refused_handshake_names_the_identity_not_a_key(install, realtime_server):
    url, _, refuse = realtime_server
    install(FakeCredential())
    refuse.append(403)
    with pytest.raises(UpstreamConnectError) as info:
        await open_realtime_with_retries(entra_upstream(url, connect_retries=2))
    assert info.value.status == 403 and info.value.attempts == 1  # not retried
    assert "Cognitive Services OpenAI User" in str(info.value) and "API key" not in str(info.value)


async def test_tokens_are_registered_for_redaction_and_never_logged(install):
    from structlog.testing import capture_logs

    credential = FakeCredential(lifetime_s=0.2, fail=(2,))
    provider = install(credential, min_validity_s=0.01, min_refresh_s=0.01, retry_backoff_s=(30.0,))
    with capture_logs() as logs:
        token = await provider.token(1.0)  # fetch 1 succeeds; the refresh at half-life (0.1 s) fails
        await until(lambda: provider.last_error is not None)
        await provider.close()
    assert token not in redact(f"Authorization: Bearer {token}")
    assert [entry["event"] for entry in logs] == ["entra_token_acquired", "entra_token_failed"]
    assert "fake-entra-token" not in repr(logs)
    assert logs[1]["error"] == "RuntimeError: ManagedIdentityCredential: no managed identity endpoint found"


async def test_from_settings_to_the_loopback_server(install, realtime_server):
    """AZURE_OPENAI_AUTH=auto without a key: the settings name the scope, the provider fills the header."""
    url, seen, _ = realtime_server
    settings = load_settings({"AZURE_OPENAI_ENDPOINT": url.split("/openai")[0], "AZURE_OPENAI_DEPLOYMENT": "rt",
                              "UPSTREAM_CONNECT_TIMEOUT_S": "2"})
    credential = FakeCredential()
    install(credential)
    conn = await open_realtime(settings.upstream)
    await conn.close()
    assert seen == ["Bearer " + credential.issued[0].token]


async def test_other_upstreams_start_no_refresher():
    upstream = Upstream(provider="openai", url="wss://api.openai.com/v1/realtime", dialect="ga")
    refresher = entra.token_refresher(upstream)(object())
    await refresher.__anext__()
    with pytest.raises(StopAsyncIteration):
        await refresher.__anext__()
    assert AZURE_ENTRA_SCOPE not in entra._providers


async def test_the_default_credential_is_azure_identitys_and_is_built_offline():
    from azure.identity.aio import DefaultAzureCredential

    credential = entra._default_credential()
    assert isinstance(credential, DefaultAzureCredential)
    await credential.close()


class FixedCredential(FakeCredential):
    """Always the same token, so the echo line can be told which bearer to accept."""

    TOKEN = "fake-entra-token-fixed-abcdefghijklmnop"

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        await super().get_token(*scopes, **kwargs)
        return AccessToken(self.TOKEN, time.time() + 3600)


async def test_a_call_through_the_app_to_an_azure_upstream_with_entra_id(install):
    """The whole path: Azure settings without a key, the refresher as the app's cleanup context, the
    echo line accepting only the Entra bearer, a simulated Twilio call with one turn."""
    from aiohttp import web

    from gateway.app import create_app
    from gateway.sim.audio import speech_like
    from gateway.sim.caller import CallScript, SimulatedCaller
    from gateway.sim.echo import EchoLine

    echo = EchoLine(api_key=FixedCredential.TOKEN, pace=4.0)
    await echo.start()
    credential = FixedCredential()
    install(credential)
    settings = load_settings({"AZURE_OPENAI_ENDPOINT": f"http://127.0.0.1:{echo.port}",
                              "AZURE_OPENAI_DEPLOYMENT": "rt", "VAD_SILENCE_DURATION_MS": "300"})
    assert settings.upstream.auth == "entra"
    app = create_app(settings)
    app.cleanup_ctx.append(entra.token_refresher(settings.upstream))  # the line create_app is to carry
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        reports = await asyncio.gather(*(SimulatedCaller(f"http://127.0.0.1:{port}").run(
            CallScript(utterances=[speech_like(500, seed=n)])) for n in range(3)))
        for report in reports:
            assert report.errors == [] and len(report.turn_latencies_ms) == 1, report.events
        assert len(echo.sessions) == 3 and all(s.dialect == "ga" for s in echo.sessions)
    finally:
        await runner.cleanup()
        await echo.stop()
    assert len(credential.calls) == 1  # fetched once, at start, for three calls
    assert entra.provider_for(AZURE_ENTRA_SCOPE).cached() is None  # stopped with the app
