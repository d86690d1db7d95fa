"""Agent profiles: routing a dialed number, filling a call's values into the agent."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.agent_settings import Agent, StoredPrompt
from gateway.agents.profile import AgentBook, Profile, Route, fill, normalise

SALES = Profile("sales", Agent(instructions="Sales for {{to}}; caller {{from}} at {{now}}.", greeting="Hi {{name}}!",
                               name="sales"))
SUPPORT = Profile("support", Agent(instructions="Support.", name="support"))
NIGHT = Profile("night", Agent(instructions="After hours.", name="night"))
BOOK = AgentBook({"sales": SALES, "support": SUPPORT, "night": NIGHT}, "support",
                 (Route("+1800*", "night"), Route("+14155550100", "sales"), Route("+1415555????", "night")))


@pytest.mark.parametrize(("dialed", "agent"), [
    ("+14155550100", "sales"),  # exact, though a pattern before it matches too
    ("+14155550199", "night"),  # ? is one digit
    ("+141555501999", "support"),  # one digit too many for the pattern: the default
    ("+18005550100", "night"),
    ("+1 (415) 555-0100", "sales"),  # written with spaces, brackets and dashes
    ("sip:+14155550100@pbx.example.com", "sales"),
    ("+442071234567", "support"),
    (None, "support"),
    ("", "support"),
])
def test_a_dialed_number_is_routed_exact_first_then_patterns_in_order_then_the_default(dialed, agent):
    assert BOOK.route(dialed).name == agent


def test_get_is_by_name_only():
    assert BOOK.get("sales") is SALES
    assert BOOK.get("nobody") is None
    assert BOOK.get(None) is None
    assert BOOK.names() == ["night", "sales", "support"]


def test_the_default_must_be_a_profile():
    with pytest.raises(ValueError, match="default agent 'nobody'"):
        AgentBook({"sales": SALES}, "nobody")


def test_a_call_fills_from_to_now_and_variables():
    now = dt.datetime(2026, 11, 30, 9, 5, tzinfo=dt.UTC)
    agent = SALES.for_call(from_number="+15550001111", to_number="+14155550100", variables={"name": "Ada"}, now=now)
    assert agent.instructions == "Sales for +14155550100; caller +15550001111 at 2026-11-30T09:05+00:00."
    assert agent.greeting == "Hi Ada!"
    assert agent.name == "sales"
    assert SALES.agent.instructions.startswith("Sales for {{to}}")  # the profile itself is untouched


def test_a_missing_value_is_left_empty_and_an_agent_without_placeholders_is_shared():
    agent = SALES.for_call(from_number=None, to_number=None)
    assert agent.instructions.startswith("Sales for ; caller  at ")
    assert agent.greeting == "Hi !"
    assert SUPPORT.for_call(from_number="+1", to_number="+2") is SUPPORT.agent


def test_stored_prompt_variables_are_filled_too():
    profile = Profile("p", Agent(instructions="", prompt=StoredPrompt("pmpt_1", "2", {"caller": "{{from}}"}), name="p"))
    agent = profile.for_call(from_number="+15550001111", to_number=None)
    assert agent.prompt == StoredPrompt("pmpt_1", "2", {"caller": "+15550001111"})


def test_fill_and_normalise():
    assert fill("{{ a }}/{{b}}/{{c}}", {"a": "1", "b": "2"}) == "1/2/"
    assert fill("no placeholders {x}", {}) == "no placeholders {x}"
    assert normalise(" +1 (415) 555.0100 ") == "+14155550100"


def test_the_single_agent_book_is_the_environment_agent():
    agent = Agent(instructions="Env.")
    book = AgentBook.single(agent)
    assert book.names() == ["default"]
    assert book.route("+14155550100").agent is agent
    assert book.route("+14155550100").for_call(from_number="+1", to_number="+2") is agent
