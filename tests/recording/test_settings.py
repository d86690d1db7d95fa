"""RECORDINGS_DIR and RECORDINGS_MAX_MINUTES: off by default, checked at start-up with the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings
from gateway.recording.settings import DEFAULT_MAX_MINUTES, RecordingSettings


def test_off_by_default():
    assert load_settings({}).recording is None


def test_a_writable_directory(tmp_path: Path):
    settings = load_settings({"RECORDINGS_DIR": str(tmp_path), "RECORDINGS_MAX_MINUTES": "90"})
    assert settings.recording == RecordingSettings(tmp_path, 90.0)
    assert load_settings({"RECORDINGS_DIR": str(tmp_path)}).recording.max_minutes == DEFAULT_MAX_MINUTES


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "RECORDINGS_DIR must be an existing directory: {} (no such directory)"),
    (lambda p: (p / "file").write_text("x") and p / "file",
     "RECORDINGS_DIR must be an existing directory: {} (not a directory)"),
])
def test_a_directory_that_is_not_there_is_named(tmp_path: Path, make, message):
    path = make(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings({"RECORDINGS_DIR": str(path)})
    assert info.value.errors == (message.format(path),)
    assert not (tmp_path / "missing").exists()  # never created behind the operator's back


def test_a_directory_this_process_cannot_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr("gateway.recording.settings.os.access", lambda path, mode: False)  # root writes anywhere
    with pytest.raises(ConfigError, match=f"RECORDINGS_DIR is not writable by this process: {tmp_path}"):
        load_settings({"RECORDINGS_DIR": str(tmp_path)})


def test_bad_values_are_reported_with_the_others(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_settings({"RECORDINGS_DIR": str(tmp_path / "missing"), "RECORDINGS_MAX_MINUTES": "0", "PORT": "x"})
    assert len(info.value.errors) == 3
    assert any(e.startswith("RECORDINGS_MAX_MINUTES must be a number from 0.1 to 1440") for e in info.value.errors)
