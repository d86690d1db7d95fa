"""The .env file: read by the gateway itself, in compose's env_file syntax, the environment winning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.env import ConfigError, load_env_file

GOOD = """\
# a comment, then a blank line

PORT=9090
export LOG_LEVEL=debug
AGENT_GREETING="Hello there, friend # not a comment"
AGENT_INSTRUCTIONS='Be brief; say "hi".'
FALLBACK_MESSAGE=We will call you back   # an inline comment
  INDENTED = spaced out
EMPTY=
BARE_NAME
OPENAI_REALTIME_MODEL=${MODEL_FROM_ENV:-gpt-realtime}
MULTI="line one
line two"
"""


def write(tmp_path: Path, text: str, name: str = ".env") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_compose_syntax_quotes_spaces_export_comments(tmp_path):
    environ: dict[str, str] = {}
    result = load_env_file(write(tmp_path, GOOD), environ=environ)
    assert environ == {
        "PORT": "9090",
        "LOG_LEVEL": "debug",
        "AGENT_GREETING": "Hello there, friend # not a comment",
        "AGENT_INSTRUCTIONS": 'Be brief; say "hi".',
        "FALLBACK_MESSAGE": "We will call you back",
        "INDENTED": "spaced out",
        "EMPTY": "",
        "OPENAI_REALTIME_MODEL": "gpt-realtime",
        "MULTI": "line one\nline two",
    }
    assert result is not None and result.kept == () and "BARE_NAME" not in result.loaded


def test_the_environment_wins_over_the_file(tmp_path):
    environ = {"PORT": "7070", "LOG_LEVEL": ""}  # set, even empty: kept, as compose keeps it
    result = load_env_file(write(tmp_path, "PORT=9090\nLOG_LEVEL=debug\nHOST=127.0.0.1\n"), environ=environ)
    assert environ == {"PORT": "7070", "LOG_LEVEL": "", "HOST": "127.0.0.1"}
    assert result is not None and result.loaded == ("HOST",) and result.kept == ("PORT", "LOG_LEVEL")


@pytest.mark.parametrize("bad_line", [
    "TWILIO_AUTH_TOKEN secret-value-123",        # no '=': a space instead
    'OPENAI_API_KEY="secret-value-123',          # a quote never closed
    "=secret-value-123",                         # no name
    "MY KEY=secret-value-123",                   # a space in the name
])
def test_a_line_that_cannot_be_parsed_names_the_line_never_the_value(tmp_path, bad_line):
    path = write(tmp_path, f"# settings\nPORT=9090\n\n\n{bad_line}\nHOST=127.0.0.1\n")
    environ: dict[str, str] = {}
    with pytest.raises(ConfigError) as info:
        load_env_file(path, environ=environ)
    message = str(info.value)
    assert message.startswith(f"{path} line 5: cannot be parsed")
    assert "secret-value" not in message and "secret-value" not in info.value.describe()
    assert environ == {}  # nothing is set from a file with an error


def test_every_bad_line_is_reported(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_env_file(write(tmp_path, "A B\nPORT=1\nC D\n"), environ={})
    path = tmp_path / ".env"
    assert [e.split(": ")[0] for e in info.value.errors] == [f"{path} line 1", f"{path} line 3"]


def test_missing_unreadable_and_not_utf8(tmp_path):
    assert load_env_file(tmp_path / ".env", environ={}) is None  # the default file is optional
    with pytest.raises(ConfigError, match="no such file"):
        load_env_file(tmp_path / "prod.env", required=True, environ={})
    (tmp_path / "latin1.env").write_bytes(b"PORT=1\nAGENT_GREETING=caf\xe9\n")
    with pytest.raises(ConfigError, match=r"latin1.env line 2: not UTF-8 text"):
        load_env_file(tmp_path / "latin1.env", environ={})


ROOT = Path(__file__).resolve().parent.parent


def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m gateway serve` in tmp_path with a clean environment; each case stops at start-up."""
    clean = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LOG_FORMAT": "json", **env}
    return subprocess.run([sys.executable, "-m", "gateway", "serve", *args], cwd=tmp_path, env=clean,
                          capture_output=True, text=True, timeout=60, check=False)


def test_serve_reads_dot_env_from_the_working_directory(tmp_path):
    write(tmp_path, "PORT=eighty\n")
    proc = _serve(tmp_path)
    assert proc.returncode == 2
    assert "configuration error: PORT must be an integer from 1 to 65535 (got 'eighty')" in proc.stderr
    proc = _serve(tmp_path, PORT="also-bad")  # the environment wins
    assert "(got 'also-bad')" in proc.stderr
    proc = _serve(tmp_path, "--env-file", "none", METRICS_PORT="0")  # the file is skipped
    assert proc.returncode == 2
    assert proc.stderr.strip() == "configuration error: METRICS_PORT must be an integer from 1 to 65535 (got 0)"


def test_serve_stops_on_a_bad_line_with_exit_2(tmp_path):
    write(tmp_path, "OPENAI_API_KEY=sk-fine-123456\nTWILIO_AUTH_TOKEN supersecret-token\n", "prod.env")
    proc = _serve(tmp_path, "--env-file", "prod.env")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("configuration error: prod.env line 2: cannot be parsed (expected NAME=value, "
                                   "and any quote closed; the line is not shown, it may hold a secret)")
    assert "supersecret" not in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    proc = _serve(tmp_path, "--env-file", "missing.env")
    assert proc.returncode == 2 and "missing.env: no such file" in proc.stderr


def test_serve_reports_every_configuration_error_at_once(tmp_path):
    write(tmp_path, 'PORT=eighty\nAGENT_VOICE=robot\nREALTIME_PROVIDER=azure\n')
    proc = _serve(tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "configuration errors (4, fix them all):"
    assert lines[1:] == [
        "  - PORT must be an integer from 1 to 65535 (got 'eighty')",
        "  - AZURE_OPENAI_ENDPOINT is required when REALTIME_PROVIDER=azure (your resource's "
        "https://<name>.openai.azure.com)",
        "  - AZURE_OPENAI_DEPLOYMENT is required with AZURE_OPENAI_ENDPOINT (the name of your realtime deployment)",
        "  - AGENT_VOICE must be one of alloy, ash, ballad, coral, echo, sage, shimmer, verse, marin, cedar with "
        "REALTIME_PROVIDER=azure (got 'robot')",
    ]
