"""The README's run command as a real process: offline start, a simulated call, a clean drain."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import orjson
import pytest

UPSTREAM_VARS = ("OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "REALTIME_URL", "REALTIME_PROVIDER", "TWILIO_AUTH_TOKEN")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UPSTREAM_VARS}
    return {**env, "LOG_FORMAT": "json", "HOST": "127.0.0.1", **extra}


async def read_until(stream: asyncio.StreamReader, event: str, lines: list[dict], within_s: float = 15.0) -> dict:
    async with asyncio.timeout(within_s):
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError(f"process output ended before {event!r}: {lines}")
            line = orjson.loads(raw)
            lines.append(line)
            if line.get("event") == event:
                return line


async def test_serve_offline_answers_a_simulated_call_and_drains_on_sigterm():
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", env=clean_env(PORT=str(port)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[dict] = []
    try:
        assert proc.stdout is not None
        await read_until(proc.stdout, "gateway_listening", lines)
        assert lines[0]["event"] == "offline_echo_line"  # the first line says it runs offline
        call = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "call", "--url", f"http://127.0.0.1:{port}", "--turns", "1",
            "--json", env=clean_env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(call.communicate(), 60)
        assert call.returncode == 0, err.decode()
        report = orjson.loads(out)
        assert len(report["turn_latencies_ms"]) == 1
        ended = await read_until(proc.stdout, "call_summary", lines)
        assert ended["outcome"] == "completed" and ended["call_sid"].startswith("CA")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        await read_until(proc.stdout, "gateway_stopped", lines)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(("env", "message"), [
    ({"PORT": "eighty"}, "configuration error: PORT must be an integer from 1 to 65535 (got 'eighty')"),
    ({"REALTIME_PROVIDER": "openai"}, "configuration error: OPENAI_API_KEY is required"),
])
async def test_bad_configuration_exits_2_with_a_clear_message(env, message):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", env=clean_env(**env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert message in err.decode()
    assert "Traceback" not in err.decode() + out.decode()
