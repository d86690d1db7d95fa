"""The warm upstream pool's settings (`realtime/pool.py`), read and checked with the rest at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.env import CollectingEnv

MAX_WARM_SESSIONS = 50
DEFAULT_MAX_AGE_S = 600.0


@dataclass(frozen=True)
class WarmSettings:
    sessions: int = 0  # WARM_UPSTREAM_SESSIONS: idle sessions kept open per process; 0 = off
    max_age_s: float = DEFAULT_MAX_AGE_S  # WARM_UPSTREAM_MAX_AGE_S: an idle session is renewed at this age

    @property
    def enabled(self) -> bool:
        return self.sessions > 0


def read(env: CollectingEnv, session_max_s: float) -> WarmSettings:
    """WARM_UPSTREAM_SESSIONS (0 to 50) and WARM_UPSTREAM_MAX_AGE_S (30 to 1800 s, below SESSION_MAX_S: a
    call renews a claimed session SESSION_MAX_S after the session opened, so its age is time the call loses)."""
    sessions = env.int("WARM_UPSTREAM_SESSIONS", 0, 0, MAX_WARM_SESSIONS) or 0
    max_age = env.float("WARM_UPSTREAM_MAX_AGE_S", DEFAULT_MAX_AGE_S, 30.0, 1800.0)
    if sessions and session_max_s and max_age >= session_max_s:
        env.error(f"WARM_UPSTREAM_MAX_AGE_S must be below SESSION_MAX_S (got {max_age:g} and {session_max_s:g}): "
                  "a call renews a warm session SESSION_MAX_S after it opened")
    elif sessions and not session_max_s:
        env.warn("WARM_UPSTREAM_SESSIONS with SESSION_MAX_S=0: a call on a warm session meets the server's session "
                 "cap (60 minutes at OpenAI) up to WARM_UPSTREAM_MAX_AGE_S sooner, and is not renewed before it")
    return WarmSettings(sessions, max_age)
