"""Stream start → first agent audio, with and without warm upstream sessions (`WARM_UPSTREAM_SESSIONS`).

`python -m gateway.bench.first_audio` runs the real app in-process on loopback with the echo line behind
it, the echo line made as slow to set up as a real upstream (`--handshake-ms`: TCP + TLS + the WebSocket
upgrade and the server's session.created; `--update-ms`: a session.update round trip, during which the
server handles nothing else of the session), and an agent that greets. For each mode it places `--calls`
calls one after another with the simulated Twilio caller and times, at the caller, from sending the
stream's `start` to receiving the first agent audio:

- `dial`: no pool, the call opens its session (handshake, then session.update, then the greeting);
- `pool`: the call claims an idle session (session.update, then the greeting);
- `webhook`: signed webhooks, so the webhook has a session configured for the call, which its stream
  claims (the greeting at once). `--gap-ms` is the time from the webhook's answer to the stream's
  opening (the carrier's own TLS and WebSocket handshake to the gateway, and its start message), the
  head start the webhook's session.update gets; in the other modes it changes nothing.

Between calls the pool is allowed to refill (calls arriving faster than sessions open would meet an empty
pool: `gateway_warm_upstream_claims_total{result="miss"}` says so in production). The figures include the
gateway's, the caller's and the echo line's work on one event loop, so they are for comparison, not the
absolute latency of a deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.app import STATE, create_app, make_runner
from gateway.bench.report import machine as bench_machine
from gateway.config import load_settings
from gateway.observability import metrics
from gateway.observability.logging import configure_logging
from gateway.sim.caller import SimulatedCaller
from gateway.sim.echo import EchoLine

MODES = ("dial", "pool", "webhook")
AUTH_TOKEN = "first-audio-bench-auth-token"
GREETING = "Thanks for calling. How can I help?"


class FirstAudioCaller(SimulatedCaller):
    """The simulated Twilio caller, noting when the first agent audio arrives; the stream opens `gap_s`
    after the webhook's answer."""

    def __init__(self, url: str, gap_s: float, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.gap_s = gap_s
        self.first_audio: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def _open_stream(self, headers: dict[str, str] | None = None) -> None:
        if self.gap_s:
            await asyncio.sleep(self.gap_s)
        await super()._open_stream(headers)

    async def _on_text(self, text: str) -> None:
        await super()._on_text(text)
        if self.report.frames_received and not self.first_audio.done():
            self.first_audio.set_result(asyncio.get_running_loop().time())

    def first_audio_ms(self) -> float:
        assert self._t0 is not None
        return (self.first_audio.result() - self._t0) * 1000.0


@dataclass
class ModeResult:
    mode: str
    latencies_ms: list[float]
    warm_hits: int
    configured: int


def _counter(name: str, labels: dict[str, str]) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def _until(check: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 - the pool refills without an event to wait on
            await asyncio.sleep(0.005)


async def run_mode(mode: str, args: argparse.Namespace) -> ModeResult:
    echo = EchoLine(pace=2.0, handshake_delay_ms=args.handshake_ms, session_update_delay_ms=args.update_ms,
                    record_audio_events=False)
    await echo.start()
    env = {"REALTIME_URL": echo.url, "AGENT_GREETING": GREETING, "LOG_LEVEL": "warning"}
    if mode != "dial":
        env["WARM_UPSTREAM_SESSIONS"] = str(args.pool)
    if mode == "webhook":
        env["TWILIO_AUTH_TOKEN"] = AUTH_TOKEN
    settings = load_settings(env)
    app = create_app(settings)
    runner = make_runner(app, settings)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    state = app[STATE]
    latencies: list[float] = []
    hits0 = _counter("gateway_warm_upstream_claims_total", {"result": "hit"})
    claimed0 = _counter("gateway_warm_upstream_parked_total", {"outcome": "claimed"})
    try:
        for i in range(args.warmup + args.calls):
            warm = state.warm
            if warm is not None:
                await _until(lambda w=warm: w.pool.idle == w.pool.size, 30.0)  # type: ignore[misc]
            caller = FirstAudioCaller(url, args.gap_ms / 1000.0, auth_token=AUTH_TOKEN if mode == "webhook" else None)
            try:
                await caller.connect()
                await asyncio.wait_for(caller.first_audio, 10.0)
                if i >= args.warmup:
                    latencies.append(caller.first_audio_ms())
                await caller.send_stop()
            finally:
                await caller.close()
            await asyncio.wait_for(state.idle.wait(), 10.0)
    finally:
        await runner.cleanup()
        await echo.stop()
    hits = _counter("gateway_warm_upstream_claims_total", {"result": "hit"}) - hits0
    configured = _counter("gateway_warm_upstream_parked_total", {"outcome": "claimed"}) - claimed0
    return ModeResult(mode, latencies, int(hits), int(configured))


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * p // 100) - 1))] if ordered else float("nan")


def machine() -> str:
    """The machine in one line, from the load bench's description of it."""
    m = bench_machine()
    return f"{m['cores']} CPU {m['cpu'] or m['platform']}, {m['platform']}, Python {m['python']}"


def report(results: list[ModeResult], args: argparse.Namespace) -> str:
    lines = [f"stream start -> first agent audio, {args.calls} sequential calls per mode (after {args.warmup} "
             f"warm-up), echo line handshake {args.handshake_ms:g} ms, session.update {args.update_ms:g} ms, "
             f"webhook -> stream {args.gap_ms:g} ms, pool of {args.pool}",
             f"machine: {machine()}", "",
             f"{'mode':<8} {'p50 ms':>8} {'p95 ms':>8} {'min ms':>8} {'max ms':>8}  claimed warm  "
             "configured at webhook"]
    total = args.warmup + args.calls
    for r in results:
        v = r.latencies_ms
        lines.append(f"{r.mode:<8} {percentile(v, 50):8.1f} {percentile(v, 95):8.1f} {min(v):8.1f} {max(v):8.1f}"
                     f"  {r.warm_hits:>5}/{total:<6}  {r.configured:>5}/{total}")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[ModeResult]:
    return [await run_mode(mode, args) for mode in args.modes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.bench.first_audio", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=30, help="measured calls per mode (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="calls per mode not measured (default 3)")
    parser.add_argument("--handshake-ms", type=float, default=250.0, help="echo line handshake delay (default 250)")
    parser.add_argument("--update-ms", type=float, default=100.0, help="echo line session.update delay (default 100)")
    parser.add_argument("--gap-ms", type=float, default=150.0, help="webhook answer -> stream opened (default 150)")
    parser.add_argument("--pool", type=int, default=2, help="WARM_UPSTREAM_SESSIONS in the pool modes (default 2)")
    parser.add_argument("--modes", type=lambda s: [m for m in s.split(",") if m], default=list(MODES),
                        help="comma-separated: dial,pool,webhook (default all)")
    args = parser.parse_args(argv)
    if unknown := [m for m in args.modes if m not in MODES]:
        parser.error(f"modes are {', '.join(MODES)} (got {', '.join(unknown)})")
    if args.calls < 1 or args.warmup < 0 or not 1 <= args.pool <= 50:
        parser.error("--calls must be at least 1, --warmup at least 0, --pool from 1 to 50")
    configure_logging("warning", "console", stream=sys.stderr)
    started = time.monotonic()
    results = asyncio.run(main_async(args))
    print(report(results, args))
    print(f"\n({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
