"""The aiohttp application: routes, shared state, lifecycle and graceful drain."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from gateway.carriers import registry
from gateway.config import Settings
from gateway.http.admin import list_calls
from gateway.http.control import ControlLinks, control_document
from gateway.http.health import healthz, metrics_handler, readyz
from gateway.http.media import media_socket
from gateway.http.outbound import add_routes as add_call_api_routes
from gateway.http.stream_tokens import StreamTokens
from gateway.http.voice import voice_webhook
from gateway.http.warm import WarmSessions
from gateway.observability import metrics
from gateway.observability.logging import register_secret
from gateway.observability.reports import ReportSink
from gateway.realtime.entra import token_refresher
from gateway.realtime.pool import WarmPool
from gateway.reload import reload_agents
from gateway.state import STATE, GatewayState
from gateway.tools.runner import Toolbox

__all__ = ["STATE", "GatewayState", "create_app", "create_metrics_app", "serve"]

log = structlog.get_logger("gateway")

LOOP_LAG_INTERVAL_S = 0.25


async def _offline_echo_line(app: web.Application) -> AsyncIterator[None]:
    """With no upstream configured, answer calls with the built-in echo line on a loopback port."""
    state = app[STATE]
    if state.settings.upstream.provider != "echo":
        yield
        return
    from gateway.sim.echo import EchoLine

    script = state.settings.echo_tool_script
    delays = state.settings.echo_delays
    echo = EchoLine(host="127.0.0.1", port=0, tool_script=script, handshake_delay_ms=delays.handshake_ms,
                    session_update_delay_ms=delays.session_update_ms)
    await echo.start()
    state.echo = echo
    state.upstream = dataclasses.replace(state.upstream, url=echo.url)
    tools = state.settings.agent.tools
    if script is not None:
        log.info("echo_tool_script", turns=sorted(script.turns), calls=sorted(script.calls()),
                 undeclared=sorted(script.calls() - set(tools.names())) or None)
    elif tools:
        log.info("echo_tool_script_unset", note="the offline echo line only echoes: set ECHO_TOOL_SCRIPT (e.g. "
                 "deploy/echo-script.example.yaml) to have it call the tools of TOOLS_FILE")
    try:
        yield
    finally:
        await echo.stop()


async def _warm_upstream(app: web.Application) -> AsyncIterator[None]:
    """WARM_UPSTREAM_SESSIONS idle upstream sessions, kept open for calls to claim; all closed at shutdown."""
    state = app[STATE]
    warm = state.settings.warm_upstream
    if not warm.enabled:
        yield
        return
    pool = WarmPool(state.upstream, warm.sessions, warm.max_age_s)  # the default upstream (the echo line's URL)
    state.warm = WarmSessions(pool)
    pool.start()
    log.info("warm_upstream_pool", sessions=warm.sessions, max_age_s=warm.max_age_s, upstream=state.upstream.describe())
    try:
        yield
    finally:
        await state.warm.close()
        state.warm = None


async def _tools(app: web.Application) -> AsyncIterator[None]:
    """The tools' one HTTP client, closed at shutdown."""
    try:
        yield
    finally:
        await app[STATE].tools.close()


async def _call_reports(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    await state.reports.start()
    try:
        yield
    finally:
        await state.reports.stop()


async def _carriers(app: web.Application) -> AsyncIterator[None]:
    try:
        yield
    finally:
        for carrier in app[STATE].carriers.values():
            with contextlib.suppress(Exception):
                await carrier.close()


async def _loop_lag_monitor(app: web.Application) -> AsyncIterator[None]:
    async def monitor() -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + LOOP_LAG_INTERVAL_S
            await asyncio.sleep(LOOP_LAG_INTERVAL_S)
            metrics.LOOP_LAG.observe(max(0.0, loop.time() - expected))

    task = asyncio.create_task(monitor(), name="loop-lag-monitor")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _close_calls(app: web.Application) -> None:
    """On shutdown, end the calls still open (the drain already waited for them)."""
    for call in list(app[STATE].calls):
        await call.shut_down("gateway shutting down")


SERVER_HEADER = "voice-gateway"


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """Say what we are, not which Python and aiohttp versions serve it."""
    response.headers["Server"] = SERVER_HEADER


def make_runner(app: web.Application, settings: Settings) -> web.AppRunner:
    """The app's runner: no access log (call logs say more), and an HTTP connection that has not sent a
    complete request within HTTP_IDLE_TIMEOUT_S is closed, whether it is an idle keep-alive or a half-sent
    request (aiohttp's default holds either for an hour). A media WebSocket, once established, is a running
    request and is not affected."""
    return web.AppRunner(app, handle_signals=False, access_log=None, keepalive_timeout=settings.http_idle_timeout_s)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app.on_response_prepare.append(_server_header)
    agents = settings.agents.names() if settings.agents is not None else [settings.agent.name]
    metrics.initialise_labels(list(settings.carriers), settings.upstream.provider, agents)  # alerts see 0, not nothing
    metrics.initialise_tool_labels(settings.agent.tools.names())
    for profile in settings.agents.profiles.values() if settings.agents is not None else ():
        metrics.initialise_tool_labels(profile.agent.tools.names())
    app[STATE] = GatewayState(
        settings=settings,
        upstream=settings.upstream,
        tokens=StreamTokens(settings.stream_token_secret, settings.stream_token_ttl_s),
        carriers=registry.build(settings.carriers),
        reports=ReportSink(settings.call_reports_dir, settings.call_report_url, settings.call_report_secret),
        tools=Toolbox(settings.agent.tools),
    )
    state = app[STATE]
    if settings.public_url:  # carriers that fetch call-control markup get signed URLs of it
        state.control_links = ControlLinks(settings.stream_token_secret, settings.public_url)
        for name, carrier in state.carriers.items():
            carrier.document_url = state.control_links.url_for(name)
    app.router.add_get("/voice/{carrier}/control/{token}", control_document)
    app.router.add_post("/voice/{carrier}/control/{token}", control_document)
    # Each carrier under its name; the bare /voice and /media serve the default carrier (Twilio), as
    # before carriers had routes of their own, so no number configured then breaks.
    for path in ("/voice/{carrier}", "/voice"):
        app.router.add_post(path, voice_webhook)
        app.router.add_get(path, voice_webhook)
    app.router.add_get("/media/{carrier}", media_socket)
    app.router.add_get("/media", media_socket)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/calls", list_calls)
    add_call_api_routes(app.router)  # POST /calls, /calls/{id} (GET, DELETE, transfer), /status/{carrier}
    if settings.metrics_port is None:
        app.router.add_get("/metrics", metrics_handler(STATE))
    if settings.offline:  # the example tools file's order-status tool answers offline (deploy/tools.example.yaml)
        from gateway.sim.echo_demo import demo_order

        app.router.add_get("/demo/orders/{order_id}", demo_order)
    app.cleanup_ctx.append(_offline_echo_line)
    app.cleanup_ctx.append(_tools)
    app.cleanup_ctx.append(_loop_lag_monitor)
    app.cleanup_ctx.append(_call_reports)
    app.cleanup_ctx.append(_carriers)
    app.cleanup_ctx.append(token_refresher(settings.upstream))  # Azure with Entra ID: fetched off the call path
    app.cleanup_ctx.append(_warm_upstream)  # after the echo line (its URL) and the Entra token
    app.on_shutdown.append(_close_calls)
    return app


def create_metrics_app(main: web.Application) -> web.Application:
    """/metrics on its own listener (METRICS_PORT), so it need not be public."""
    app = web.Application()
    app.on_response_prepare.append(_server_header)
    app[STATE] = main[STATE]
    app.router.add_get("/metrics", metrics_handler(STATE))
    app.router.add_get("/healthz", healthz)
    return app


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then drain: refuse new calls, let active ones finish, exit."""
    for secret in settings.secrets():
        register_secret(secret)
    app = create_app(settings)
    runner = make_runner(app, settings)
    await runner.setup()
    runners = [runner]
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
        if settings.metrics_port is not None:
            metrics_runner = make_runner(create_metrics_app(app), settings)
            await metrics_runner.setup()
            runners.append(metrics_runner)
            await web.TCPSite(metrics_runner, settings.host, settings.metrics_port).start()
        state = app[STATE]
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[bool]] = set()

        def on_sighup() -> None:  # AGENTS_FILE again, off the event loop; a bad file keeps the old profiles
            task = asyncio.create_task(reload_agents(state), name="agents-reload")
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        log.info("gateway_listening", url=f"http://{settings.host}:{settings.port}",
                 upstream=state.upstream.describe(), provider=state.upstream.provider,
                 dialect=state.upstream.dialect, metrics_port=settings.metrics_port or settings.port,
                 agents=state.agents.names() if state.agents is not None else None)
        try:
            await _until_signalled_then_drain(state)
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
    finally:
        for r in reversed(runners):
            await r.cleanup()
        log.info("gateway_stopped")


async def _until_signalled_then_drain(state: GatewayState) -> None:
    loop = asyncio.get_running_loop()
    signals: asyncio.Queue[str] = asyncio.Queue()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signals.put_nowait, sig.name)
    try:
        name = await signals.get()
        state.draining = True
        timeout = state.settings.drain_timeout_s
        log.info("drain_started", signal=name, active_calls=len(state.calls), timeout_s=timeout)
        idle = asyncio.create_task(state.idle.wait())
        second = asyncio.create_task(signals.get())  # a second signal ends the drain at once
        done, pending = await asyncio.wait({idle, second}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if second in done:
            log.warning("drain_cut_short", active_calls=len(state.calls))
        log.info("drain_finished", active_calls=len(state.calls))
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
