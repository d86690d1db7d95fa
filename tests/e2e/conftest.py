"""End to end over real loopback sockets: the real app, the echo line behind it, the simulated caller in front."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from gateway.app import STATE, GatewayState, create_app, make_runner
from gateway.config import load_settings
from gateway.observability import metrics
from gateway.sim.echo import EchoLine

AUTH_TOKEN = "twilio-auth-token-for-tests"


@dataclass
class Gateway:
    url: str
    app: web.Application
    echo: EchoLine

    @property
    def state(self) -> GatewayState:
        return self.app[STATE]


def upstream_env(echo: EchoLine, dialect: str) -> dict[str, str]:
    if dialect == "ga":
        return {"REALTIME_URL": echo.url}
    return {"REALTIME_URL": echo.url, "REALTIME_DIALECT": "beta"}  # sends OpenAI-Beta: realtime=v1


async def start_gateway(echo: EchoLine, dialect: str, port: int = 0, **env: str) -> tuple[Gateway, web.AppRunner]:
    settings = load_settings({
        **upstream_env(echo, dialect),
        "VAD_SILENCE_DURATION_MS": "300",
        "VAD_PREFIX_PADDING_MS": "100",
        **env,
    })
    app = create_app(settings)
    runner = make_runner(app, settings)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    port = runner.addresses[0][1]
    return Gateway(f"http://127.0.0.1:{port}", app, echo), runner


@pytest.fixture(params=["ga", "beta"])
def dialect(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def echo() -> AsyncIterator[EchoLine]:
    line = EchoLine(pace=2.0, delta_ms=100)
    await line.start()
    yield line
    await line.stop()


@pytest.fixture
async def gateway(echo: EchoLine, dialect: str) -> AsyncIterator[Gateway]:
    gw, runner = await start_gateway(echo, dialect)
    yield gw
    await runner.cleanup()


@pytest.fixture
async def signed_gateway(echo: EchoLine, dialect: str) -> AsyncIterator[Gateway]:
    gw, runner = await start_gateway(echo, dialect, TWILIO_AUTH_TOKEN=AUTH_TOKEN)
    yield gw
    await runner.cleanup()


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of the samples of `name` whose labels include `labels` (a label not named is summed over)."""
    wanted = (labels or {}).items()
    return sum(s.value for metric in metrics.REGISTRY.collect() for s in metric.samples
               if s.name == name and wanted <= s.labels.items())


def twiml_parameters(twiml: str) -> dict[str, str]:
    """The <Parameter>s of a <Connect><Stream> answer: what the carrier hands back in the stream's start
    (the token, and the agent it is bound to)."""
    import xml.etree.ElementTree as ET

    return {p.get("name", ""): p.get("value", "") for p in ET.fromstring(twiml).iter("Parameter")}
