"""The recording settings, read with the rest at start-up (`config.load_settings` calls `read`).

A leaf module (it imports only `gateway.env`), so `config` can import it without a cycle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gateway.env import CollectingEnv

DEFAULT_MAX_MINUTES = 30.0


@dataclass(frozen=True)
class RecordingSettings:
    directory: Path  # RECORDINGS_DIR: exists and is writable (checked at start-up)
    max_minutes: float = DEFAULT_MAX_MINUTES  # RECORDINGS_MAX_MINUTES: beyond it a call's recording stops


def read(env: CollectingEnv) -> RecordingSettings | None:
    """None when RECORDINGS_DIR is unset (recording is off, the default). Every error goes to `env`."""
    max_minutes = env.float("RECORDINGS_MAX_MINUTES", DEFAULT_MAX_MINUTES, 0.1, 1440.0)
    raw = env.str("RECORDINGS_DIR")
    if not raw:
        return None
    path = Path(raw)
    if not path.is_dir():
        # Not created for you: a mistyped path would otherwise fill an unexpected (maybe ephemeral) disk.
        env.error(f"RECORDINGS_DIR must be an existing directory: {raw} "
                  f"({'not a directory' if path.exists() else 'no such directory'})")
        return None
    if not os.access(path, os.W_OK | os.X_OK):
        env.error(f"RECORDINGS_DIR is not writable by this process: {raw}")
        return None
    return RecordingSettings(directory=path, max_minutes=max_minutes)
