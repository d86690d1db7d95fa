"""The README's run command as a real process: offline start, a simulated call, a clean drain."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys

import orjson
import pytest

AUTH_TOKEN = "e2e-auth-token"
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


async def place_call(*args: str, env: dict[str, str]) -> tuple[int, str]:
    call = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "call", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(call.communicate(), 60)
    assert call.returncode in (0, 1), err.decode()
    return call.returncode, out.decode()


async def test_serve_offline_answers_a_simulated_call_and_drains_on_sigterm():
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--env-file", "none",
        env=clean_env(PORT=str(port), TWILIO_AUTH_TOKEN=AUTH_TOKEN),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[dict] = []
    try:
        assert proc.stdout is not None
        await read_until(proc.stdout, "gateway_listening", lines)
        assert lines[0]["event"] == "offline_echo_line"  # the first line says it runs offline
        # Unsigned: refused, and the caller says what to set instead of an empty report.
        code, out = await place_call("--turns", "1", env=clean_env(PORT=str(port)))  # --url follows $PORT
        assert code == 1 and out.splitlines()[1:] == [
            "webhook: HTTP 403",
            "refused: the webhook refused the call (HTTP 403): set --auth-token (or TWILIO_AUTH_TOKEN) to the "
            "gateway's TWILIO_AUTH_TOKEN"]
        url = f"http://127.0.0.1:{port}"
        code, out = await place_call("--url", url, "--turns", "1", "--json",
                                     env=clean_env(TWILIO_AUTH_TOKEN=AUTH_TOKEN))  # the token from the env
        assert code == 0
        report = orjson.loads(out)
        assert len(report["turn_latencies_ms"]) == 1 and report["errors"] == []
        ended = await read_until(proc.stdout, "call_summary", lines)
        assert ended["outcome"] == "completed" and ended["call_sid"].startswith("CA")
        # The text report: the figure named and defined, no mark lines, no token, no warning for a local ws URL.
        code, out = await place_call("--url", url, "--turns", "1", "--auth-token", AUTH_TOKEN, env=clean_env())
        assert code == 0 and re.search(r"utterance 1 ended at \d+ ms: answer heard after \d+ ms", out), out
        assert "answer heard after = end of your speech" in out and "heard_latency_ms" in out
        assert "mark_" not in out and "mark events not shown" in out and "warning" not in out
        token = re.search(r"token=(\S+),", out)
        assert token is not None and token.group(1).endswith("…") and len(token.group(1)) == 9
        await read_until(proc.stdout, "call_summary", lines)
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
        sys.executable, "-m", "gateway", "serve", "--env-file", "none", env=clean_env(**env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert message in err.decode()
    assert "Traceback" not in err.decode() + out.decode()


async def test_the_call_command_places_telnyx_and_vonage_calls_through_a_served_gateway():
    """`python -m gateway call --carrier telnyx|vonage` against `python -m gateway serve` (Telnyx in A-law),
    both real processes, each refused unsigned with a hint, then signed and answered."""
    import signal

    pair = await place_call("--carrier", "telnyx", "--new-telnyx-key", env=clean_env())
    keys = dict(line.split("  #")[0].split("=", 1) for line in pair[1].splitlines())
    assert set(keys) == {"TELNYX_SIM_PRIVATE_KEY", "TELNYX_PUBLIC_KEY"}
    signing = {"TELNYX_PUBLIC_KEY": keys["TELNYX_PUBLIC_KEY"], "VONAGE_SIGNATURE_SECRET": "vonage-secret-for-tests"}

    def env(**extra: str) -> dict[str, str]:
        base = {k: v for k, v in clean_env().items() if not k.startswith(("TELNYX_", "VONAGE_"))}
        return {**base, **extra}

    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "serve", "--env-file", "none",
        env=env(PORT=str(port), TELNYX_CODEC="PCMA", **signing),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[dict] = []
    try:
        assert proc.stdout is not None
        await read_until(proc.stdout, "gateway_listening", lines)
        url = f"http://127.0.0.1:{port}"
        for carrier, secret in (("telnyx", {"TELNYX_SIM_PRIVATE_KEY": keys["TELNYX_SIM_PRIVATE_KEY"]}),
                                ("vonage", {"VONAGE_SIGNATURE_SECRET": signing["VONAGE_SIGNATURE_SECRET"]})):
            code, out = await place_call("--url", url, "--carrier", carrier, "--turns", "1", env=env())
            assert code == 1 and "webhook: HTTP 403" in out and "refused:" in out, out
            code, out = await place_call("--url", url, "--carrier", carrier, "--turns", "1", "--json",
                                         env=env(**secret))
            assert code == 0, out
            report = orjson.loads(out)
            assert len(report["turn_latencies_ms"]) == 1 and report["errors"] == []
            ended = await read_until(proc.stdout, "call_summary", lines)
            assert ended["outcome"] == "completed" and ended["carrier"] == carrier
            assert ended["call_sid"] == report["call_sid"]
        started = [line for line in lines if line.get("event") == "call_started"]
        assert [line["codec"] for line in started] == ["pcma", "l16"]  # A-law passed through; L16 converted
        bad = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "call", "--url", url, "--carrier", "telnyx", "--auth-token", "not a key",
            env=env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(bad.communicate(), 30)
        assert bad.returncode == 2 and b"--auth-token for Telnyx: not base64" in err
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
