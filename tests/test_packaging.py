"""What the installed package (the wheel, the image) holds: the gateway, not its load bench."""

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def test_the_bench_is_not_shipped_but_every_runtime_package_is():
    setuptools = pytest.importorskip("setuptools", reason="setuptools finds the packages the build would ship")
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    shipped = set(setuptools.find_packages(str(ROOT), include=find["include"], exclude=find.get("exclude", ())))
    assert not any(name == "gateway.bench" or name.startswith("gateway.bench.") for name in shipped)
    for name in ("gateway", "gateway.core", "gateway.carriers", "gateway.carriers.twilio", "gateway.realtime",
                 "gateway.http", "gateway.observability", "gateway.sim"):
        assert name in shipped, name
