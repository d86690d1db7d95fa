"""AGENTS_FILE and PRICES_FILE, read by `config` with the other settings (every problem reported at once)."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.agent_settings import Agent
from gateway.agents.loader import load_agents_file
from gateway.agents.prices import PriceTable, load_prices
from gateway.agents.profile import AgentBook
from gateway.env import CollectingEnv


def read_agents(env: CollectingEnv, agent: Agent, provider: str | None, dialect: str | None,
                environ: Mapping[str, str], default_model: str | None) -> tuple[AgentBook | None, PriceTable]:
    """The agent profiles of AGENTS_FILE (None: the environment's single agent) and the price table."""
    path = env.str("AGENTS_FILE")
    book = env.check(lambda: load_agents_file(path, agent, provider=provider, dialect=dialect, environ=environ), None)
    prices = env.check(lambda: load_prices(env.str("PRICES_FILE")), PriceTable({}))
    if prices:
        models = {default_model} | {p.model for p in (book.profiles.values() if book else ())}
        unpriced = sorted(m or "(none)" for m in models - {None} if m not in prices.prices)
        if unpriced:
            env.warn(f"PRICES_FILE names no price for {', '.join(unpriced)}: calls on "
                     f"{'it' if len(unpriced) == 1 else 'them'} have no cost in their summaries")
    return book, prices
