"""One load scenario against one target: start the processes, ramp the calls, measure a steady window,
let every call finish its turn, collect what each process saw, stop everything.

Timeline on the shared monotonic clock: calls start evenly over `ramp_s` from `t0`; the steady window
opens `settle_s` after the ramp and lasts `duration_s`; at its end the callers stop starting turns,
let the answer in progress play out, and hang up, so no frame is in flight when a call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from gateway.bench.proc import Child, cpu_seconds, machine_busy_seconds, plan_cpus, read_pickle, rss_kb, spawn

TARGETS = ("gateway", "relay")
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Scenario:
    target: str
    calls: int = 50
    ramp_s: float = 5.0
    settle_s: float = 2.0
    duration_s: float = 20.0
    utterance_ms: int = 1200
    barge_in_after_ms: float | None = 400.0
    echo_pace: float = 2.0
    delta_ms: int = 20
    caller_procs: int = 1
    pin: bool = True
    drain_timeout_s: float = 30.0
    profile_dir: str | None = None  # py-spy record the target during the window
    round: int = 0  # with --repeat: which round this run belongs to
    carriers: tuple[str, ...] = ("twilio",)  # call i speaks carriers[i % len]; the relay floor only Twilio


@dataclass
class Measured:
    scenario: Scenario
    cpus: dict[str, list[int] | None]
    window: tuple[float, float] = (0.0, 0.0)  # the steady window, monotonic s
    window_s: float = 0.0
    call_seconds: float = 0.0
    target_cpu_s: float = 0.0
    rss_idle_kb: int = 0
    rss_steady_kb: int = 0
    sim_cpu: dict[str, float] = field(default_factory=dict)  # fraction of one core over the window
    other_cpu: float = 0.0  # cores used by processes that are not the bench's during the window
    echo: dict[str, Any] = field(default_factory=dict)
    callers: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profile: str | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_env(port: int, upstream: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "HOST": "127.0.0.1", "PORT": str(port), "PUBLIC_URL": "", "METRICS_PORT": "",
        "REALTIME_PROVIDER": "custom", "REALTIME_URL": upstream, "REALTIME_DIALECT": "ga", "REALTIME_API_KEY": "",
        "LOG_LEVEL": "warning", "LOG_FORMAT": "json", "DRAIN_TIMEOUT_S": "2", "MAX_CONCURRENT_CALLS": "0",
        "TWILIO_AUTH_TOKEN": "", "ADMIN_TOKEN": "", "AGENT_GREETING": "", "INPUT_TRANSCRIPTION_MODEL": "",
        "TURN_DETECTION": "server_vad", "VAD_THRESHOLD": "0.5", "VAD_PREFIX_PADDING_MS": "300",
        "VAD_SILENCE_DURATION_MS": "500", "VAD_CREATE_RESPONSE": "true", "VAD_INTERRUPT_RESPONSE": "true",
        "NOISE_REDUCTION": "off",
    })
    return env


async def wait_http(url: str, child: Child, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as http:
        while time.monotonic() < deadline:
            if child.proc.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{child.name} did not come up at {url}; see {child.log_path}:\n{tail(child.log_path)}")


def tail(path: str, lines: int = 15) -> str:
    with contextlib.suppress(OSError), open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])
    return ""


async def _sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - time.monotonic()))


async def run_scenario(sc: Scenario, progress: Callable[[str], None]) -> Measured:
    target_cpus, sim_cpus = plan_cpus(sc.pin)
    m = Measured(sc, {"target": sorted(target_cpus) if target_cpus else None,
                      "simulators": sorted(sim_cpus) if sim_cpus else None})
    tmp = tempfile.mkdtemp(prefix=f"bench-{sc.target}-")
    children: list[Child] = []
    target: Child | None = None
    profiler: asyncio.subprocess.Process | None = None
    try:
        echo = await spawn("echo line", ["-m", "gateway.bench.echo_proc", "--pace", str(sc.echo_pace),
                                         "--delta-ms", str(sc.delta_ms)],
                           cpus=sim_cpus, log_path=f"{tmp}/echo.log", controlled=True)
        children.append(echo)
        upstream = (await echo.read_line(START_TIMEOUT_S))["url"]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        if sc.target == "gateway":
            target = await spawn("gateway", ["-m", "gateway", "serve", "--env-file", "none"], cpus=target_cpus,
                                 controlled=False, log_path=f"{tmp}/target.log", env=gateway_env(port, upstream))
            children.append(target)
            await wait_http(base + "/healthz", target)
        else:
            target = await spawn("relay", ["-m", "gateway.bench.relay", "--port", str(port), "--upstream", upstream],
                                 cpus=target_cpus, controlled=False, log_path=f"{tmp}/target.log")
            children.append(target)
            await wait_http(base + "/voice", target)
        callers = await _start_callers(sc, base, sim_cpus, tmp, children)
        await asyncio.sleep(1.0)
        m.rss_idle_kb = rss_kb(target.pid)

        t0 = time.monotonic() + 0.5
        ws = t0 + sc.ramp_s + sc.settle_s
        we = ws + sc.duration_s
        m.window = (ws, we)
        await echo.command("go", window=[ws, we])
        for c in callers:
            await c.command("go", t0=t0, ramp_s=sc.ramp_s, window=[ws, we], drain_at=we)

        sims = [echo, *callers]
        active: list[tuple[float, int]] = []
        cpu0: dict[int, float] = {}
        next_tick = time.monotonic()
        while (now := time.monotonic()) < we:
            next_tick = min(next_tick + 1.0, ws if now < ws else we)
            await _sleep_until(next_tick)
            now = time.monotonic()
            if not cpu0 and now >= ws:
                cpu0 = {c.pid: cpu_seconds(c.pid) for c in (target, *sims)}
                cpu0[0], cpu0[-1] = now, machine_busy_seconds()
                if sc.profile_dir:
                    profiler = await _start_profiler(sc, target.pid, tmp)
            status = await _status(callers)
            if ws <= now:
                active.append((now, status["active"]))
            phase = "ramp" if now < ws else "steady"
            progress(f"[{sc.target} x{sc.calls}] {phase} {max(0.0, now - t0):5.1f}s"
                     f"  calls {status['active']}/{sc.calls}  frames sent {status['frames_sent']}"
                     f"  media {status['media']}  barge-ins {status['barge_ins']}"
                     f"  target cpu {_cpu_pct(target.pid, now, cpu0)}")
        t_end = time.monotonic()
        cpu1 = {c.pid: cpu_seconds(c.pid) for c in (target, *sims)}
        busy = machine_busy_seconds() - cpu0[-1]
        m.rss_steady_kb = rss_kb(target.pid)
        m.window_s = t_end - cpu0[0]
        m.target_cpu_s = cpu1[target.pid] - cpu0[target.pid]
        m.sim_cpu = {"echo line": (cpu1[echo.pid] - cpu0[echo.pid]) / m.window_s}
        for i, c in enumerate(callers):
            m.sim_cpu[f"callers {i + 1}"] = (cpu1[c.pid] - cpu0[c.pid]) / m.window_s
        m.call_seconds = _call_seconds(active, cpu0[0], t_end)
        ours = sum(cpu1[pid] - cpu0[pid] for pid in cpu1)
        m.other_cpu = max(0.0, busy - ours) / m.window_s
        if profiler is not None:
            m.profile = await _stop_profiler(profiler, sc, tmp)

        deadline = time.monotonic() + sc.drain_timeout_s
        while True:
            status = await _status(callers)
            progress(f"[{sc.target} x{sc.calls}] draining: {status['done']}/{sc.calls} calls ended")
            if status["done"] >= sc.calls or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        if status["done"] < sc.calls:
            m.notes.append(f"{sc.calls - status['done']} calls still running after the drain timeout")
        await asyncio.sleep(0.3)  # the last closes reach the echo line
        m.echo = await _report(echo, f"{tmp}/echo.pickle")
        for i, c in enumerate(callers):
            m.callers.append(await _report(c, f"{tmp}/callers{i}.pickle"))
        return m
    finally:
        if profiler is not None and profiler.returncode is None:
            profiler.kill()
            await profiler.wait()
        for child in reversed(children):
            await child.stop()
        if target is not None and target.proc.returncode not in (0, -15):
            m.notes.append(f"the {sc.target} exited with code {target.proc.returncode}: {tail(target.log_path, 5)}")
        if target is not None and (events := logged_events(target.log_path)):
            m.notes.append(f"the {sc.target} logged: " + ", ".join(f"{k} x{n}" for k, n in events.items()))
        shutil.rmtree(tmp, ignore_errors=True)


def logged_events(path: str) -> dict[str, int]:
    """What a target's JSON log (warnings and errors: the bench's log level) says happened, counted by
    event (the gateway's webhook warnings for the bench's unsigned requests left out)."""
    counts: dict[str, int] = {}
    with contextlib.suppress(OSError), open(path, errors="replace") as f:
        for line in f:
            try:
                event = orjson.loads(line).get("event")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(event, str) and event != "webhook_unauthenticated":
                counts[event] = counts.get(event, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


async def _start_callers(sc: Scenario, base: str, cpus: set[int] | None, tmp: str,
                         children: list[Child]) -> list[Child]:
    procs = max(1, min(sc.caller_procs, sc.calls))
    callers = []
    first = 0
    for i in range(procs):
        count = sc.calls // procs + (i < sc.calls % procs)
        argv = ["-m", "gateway.bench.callers_proc", "--url", base, "--first", str(first), "--count", str(count),
                "--total", str(sc.calls), "--utterance-ms", str(sc.utterance_ms)]
        if sc.barge_in_after_ms is not None:
            argv += ["--barge-in-after", str(sc.barge_in_after_ms)]
        argv += ["--carriers", ",".join(sc.carriers)]
        child = await spawn(f"callers {i + 1}", argv, cpus=cpus, log_path=f"{tmp}/callers{i}.log", controlled=True)
        children.append(child)
        callers.append(child)
        first += count
    for c in callers:
        await c.read_line(START_TIMEOUT_S)
    return callers


async def _status(callers: list[Child]) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in callers:
        for k, v in (await c.command("status")).items():
            total[k] = total.get(k, 0) + v
    return total


async def _report(child: Child, path: str) -> dict[str, Any]:
    answer = await child.command("report", path=path, wait_s=60.0)
    if "error" in answer:
        raise RuntimeError(f"{child.name}: {answer['error']}")
    return read_pickle(path)


def _call_seconds(active: list[tuple[float, int]], start: float, end: float) -> float:
    """Integral of the active call count over [start, end], from the status samples."""
    if not active:
        return 0.0
    total, prev_t, prev_n = 0.0, start, active[0][1]
    for t, n in active:
        total += prev_n * (min(t, end) - prev_t)
        prev_t, prev_n = min(t, end), n
    return total + prev_n * max(0.0, end - prev_t)


_last_cpu: dict[int, tuple[float, float]] = {}


def _cpu_pct(pid: int, now: float, cpu0: dict[int, float]) -> str:
    used = cpu_seconds(pid)
    before = _last_cpu.get(pid)
    _last_cpu[pid] = (now, used)
    if before is None or now <= before[0]:
        return "-"
    return f"{100.0 * (used - before[1]) / (now - before[0]):3.0f}%"


async def _start_profiler(sc: Scenario, pid: int, tmp: str) -> asyncio.subprocess.Process | None:
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
    if py_spy is None:
        return None
    return await asyncio.create_subprocess_exec(
        py_spy, "record", "-p", str(pid), "-d", str(max(1, int(sc.duration_s))), "-r", "200", "-f", "raw",
        "-o", f"{tmp}/profile.txt", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def _stop_profiler(profiler: asyncio.subprocess.Process, sc: Scenario, tmp: str) -> str | None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(profiler.wait(), 10.0)
    if profiler.returncode is None:
        profiler.terminate()
        await profiler.wait()
    assert sc.profile_dir is not None
    os.makedirs(sc.profile_dir, exist_ok=True)
    out = os.path.join(sc.profile_dir, f"{sc.target}-{sc.calls}.collapsed.txt")
    with contextlib.suppress(OSError):
        shutil.copy(f"{tmp}/profile.txt", out)
        return out
    return None
