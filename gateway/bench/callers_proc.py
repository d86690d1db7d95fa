"""A process of simulated callers: a share of the bench's calls, run by `gateway.bench.load_caller`.

Run by the driver as `python -m gateway.bench.callers_proc`; it prints one ready line, then answers
the driver's commands: `go` (start the calls on the shared monotonic clock), `status`, `report`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from array import array
from dataclasses import asdict
from typing import Any

import aiohttp

from gateway.bench.load_caller import FrameClock, LoadCall, Script, utterance_tails
from gateway.bench.proc import announce, run_helper, serve_commands, write_pickle
from gateway.bench.wires import WIRES

SEEDS = 5  # distinct utterances, so calls do not all say the same thing


class Callers:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.script = Script(utterance_ms=args.utterance_ms, barge_in_after_ms=args.barge_in_after)
        self.carriers = args.carriers.split(",")
        self.tails = [utterance_tails(args.utterance_ms, seed) for seed in range(SEEDS)]
        self.out_latency = array("d")
        self.window = (float("inf"), float("-inf"))
        self.calls: list[LoadCall] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.http: aiohttp.ClientSession | None = None

    def on_latency(self, t: float, ms: float) -> None:
        lo, hi = self.window
        if lo <= t <= hi:
            self.out_latency.append(ms)

    def go(self, t0: float, ramp_s: float, window: tuple[float, float], drain_at: float) -> None:
        a = self.args
        self.window = window
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        self.http = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=20.0))
        spacing = ramp_s / max(1, a.total)
        clock = FrameClock(asyncio.get_running_loop())  # one timer for every call's frames
        for i in range(a.first, a.first + a.count):
            wire = WIRES[self.carriers[i % len(self.carriers)]](i)
            call = LoadCall(a.url, i, self.http, self.script, self.tails[i % SEEDS], self.on_latency, drain_at,
                            clock, wire)
            self.calls.append(call)
            self.tasks.append(asyncio.create_task(call.run(t0 + i * spacing)))

    def status(self) -> dict[str, Any]:
        calls = self.calls
        return {
            "active": sum(c.active for c in calls),
            "connected": sum(c.stats.connected for c in calls),
            "done": sum(t.done() for t in self.tasks),
            "failed": sum(bool(c.stats.errors) for c in calls),
            "frames_sent": sum(c.stats.frames_sent for c in calls),
            "media": sum(c.stats.media + c.stats.media_stale for c in calls),
            "barge_ins": sum(c.stats.barge_ins for c in calls),
            "clears": sum(len(c.stats.clears) for c in calls),
        }

    def report(self) -> dict[str, Any]:
        return {"calls": [asdict(c.stats) for c in self.calls], "out_latency": self.out_latency.tobytes()}

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.close()


async def _main(args: argparse.Namespace) -> None:
    callers = Callers(args)
    announce({"ready": True, "pid": os.getpid()})

    async def handle(cmd: dict[str, Any]) -> dict[str, Any]:
        if cmd["cmd"] == "go":
            callers.go(cmd["t0"], cmd["ramp_s"], tuple(cmd["window"]), cmd["drain_at"])  # type: ignore[arg-type]
            return {"ok": True}
        if cmd["cmd"] == "status":
            return callers.status()
        if cmd["cmd"] == "report":
            write_pickle(cmd["path"], callers.report())
            return {"ok": True}
        return {"error": f"unknown command {cmd['cmd']!r}"}

    try:
        await serve_commands(handle)
    finally:
        await callers.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.bench.callers_proc")
    parser.add_argument("--url", required=True)
    parser.add_argument("--first", type=int, default=0, help="first call id of this process")
    parser.add_argument("--count", type=int, required=True, help="calls of this process")
    parser.add_argument("--total", type=int, required=True, help="calls of the whole bench (for the ramp)")
    parser.add_argument("--utterance-ms", type=int, default=1200)
    parser.add_argument("--barge-in-after", type=float, default=None)
    parser.add_argument("--carriers", default="twilio",
                        help="comma-separated; call i speaks the (i mod n)-th (gateway.bench.wires)")
    args = parser.parse_args(argv)
    print(f"callers {args.first}..{args.first + args.count - 1} at {time.monotonic():.3f}", file=sys.stderr)
    run_helper(lambda: _main(args))


if __name__ == "__main__":
    main()
