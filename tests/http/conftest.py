"""The HTTP doors are tested over the real app on loopback, with the end-to-end fixtures."""

from ..e2e.conftest import dialect, echo, gateway  # noqa: F401 - fixtures
