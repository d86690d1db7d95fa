"""WARM_UPSTREAM_SESSIONS and WARM_UPSTREAM_MAX_AGE_S, read with the rest of the settings."""

from __future__ import annotations

import pytest

from gateway.config import ConfigError, load_settings


def test_off_by_default():
    warm = load_settings({}).warm_upstream
    assert (warm.sessions, warm.max_age_s, warm.enabled) == (0, 600.0, False)


def test_read_and_bounded():
    warm = load_settings({"WARM_UPSTREAM_SESSIONS": "4", "WARM_UPSTREAM_MAX_AGE_S": "300"}).warm_upstream
    assert (warm.sessions, warm.max_age_s, warm.enabled) == (4, 300.0, True)
    with pytest.raises(ConfigError) as info:
        load_settings({"WARM_UPSTREAM_SESSIONS": "51", "WARM_UPSTREAM_MAX_AGE_S": "10"})
    assert any(e.startswith("WARM_UPSTREAM_SESSIONS") for e in info.value.errors)
    assert any(e.startswith("WARM_UPSTREAM_MAX_AGE_S") for e in info.value.errors)


def test_the_max_age_stays_below_the_calls_own_renewal():
    with pytest.raises(ConfigError, match="WARM_UPSTREAM_MAX_AGE_S must be below SESSION_MAX_S"):
        load_settings({"WARM_UPSTREAM_SESSIONS": "2", "SESSION_MAX_S": "600", "WARM_UPSTREAM_MAX_AGE_S": "600"})
    settings = load_settings({"WARM_UPSTREAM_SESSIONS": "2", "SESSION_MAX_S": "0"})
    assert any(w.startswith("WARM_UPSTREAM_SESSIONS with SESSION_MAX_S=0") for w in settings.warnings)

