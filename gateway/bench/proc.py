"""Processes of the bench: starting them pinned and tied to the driver, reading their CPU and memory
from /proc, and the line protocol the driver speaks with its own helper processes.

Helpers (echo line, callers) read JSON commands on stdin and answer one JSON line each on stdout;
stdin reaching EOF means the driver is gone, and they exit. Every child also gets PR_SET_PDEATHSIG,
so not even a killed driver leaves one behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pickle
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
_PR_SET_PDEATHSIG = 1


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (all cores, every process), from /proc/stat."""
    with open("/proc/stat", "rb") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK  # everything but idle and iowait


def rss_kb(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE_KB


def plan_cpus(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(target's CPUs, simulators' CPUs): one core for the target and the rest for the simulators,
    when pinning is asked for and the machine has two cores or more."""
    available = sorted(os.sched_getaffinity(0))
    if not pin or len(available) < 2:
        return None, None
    return {available[0]}, set(available[1:])


def _child_setup(cpus: set[int] | None) -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if cpus:
        os.sched_setaffinity(0, cpus)


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    log_path: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def command(self, cmd: str, wait_s: float = 30.0, **fields: Any) -> dict[str, Any]:
        """Send one command line and read its one-line answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(orjson.dumps({"cmd": cmd, **fields}) + b"\n")
        await self.proc.stdin.drain()
        return await self.read_line(wait_s)

    async def read_line(self, wait_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), wait_s)
        if not line:
            raise RuntimeError(f"{self.name} exited (code {await self.proc.wait()}); see {self.log_path}")
        return orjson.loads(line)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Close stdin, SIGTERM, then SIGKILL after `grace_s`: never leaves the process behind."""
        proc = self.proc
        if proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


def _open_log(path: str) -> Any:
    return open(path, "wb")


def write_pickle(path: str, obj: Any) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def read_pickle(path: str) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)  # written by one of our own children a moment ago


async def spawn(name: str, argv: Sequence[str], *, cpus: set[int] | None, log_path: str, controlled: bool,
                env: dict[str, str] | None = None) -> Child:
    """Start `python <argv>` in its own session (a Ctrl-C reaches only the driver, which stops it)."""
    log = _open_log(log_path)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *argv,
            stdin=asyncio.subprocess.PIPE if controlled else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if controlled else log, stderr=log,
            env=env, start_new_session=True, preexec_fn=lambda: _child_setup(cpus),
        )
    finally:
        log.close()
    return Child(name, proc, log_path)


# --- the helper side of the line protocol ------------------------------------------------------------


def announce(fields: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(fields) + b"\n")
    sys.stdout.buffer.flush()


async def serve_commands(handle: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> None:
    """Answer the driver's commands until stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            answer = await handle(orjson.loads(line))
        except Exception as exc:  # a bad command must be reported, not end the helper silently
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        announce(answer)


def run_helper(main: Callable[[], Awaitable[None]]) -> None:
    """Run a helper on uvloop; SIGTERM and SIGINT end it quietly."""
    import uvloop

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt, SystemExit), asyncio.Runner(
            loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
