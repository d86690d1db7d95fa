"""Keypad input, committed turns, idle check-ins and send_dtmf through the Realtime face, both dialects:
client events checked against the field lists of protocol-reference.md §1.3 (`response.create`'s `response`
fields of §1.3 and §2.2); no session ever sets GA server_vad's `idle_timeout_ms` (the core times silence);
send_dtmf is in the session's tools only when the call's carrier can send keys."""

import orjson
import pytest

from gateway.config import Agent, TurnDetection
from gateway.core.events import CommitInput, ConfigureSession, RequestResponse, SendUserText, UpstreamIgnored
from gateway.core.idle import GOODBYE, REPROMPT
from gateway.realtime import dialect as shapes
from gateway.realtime.face import RealtimeFace
from gateway.tools.loader import parse_tools
from tests.realtime.test_face import CLIENT_EVENT_FIELDS, CONTENT_TYPES, ITEM_FIELDS, RESPONSE_FIELDS

DIALECTS = ("ga", "beta")
AGENT = Agent(instructions="You answer for Acme Plumbing. Speak German.")


def face(dialect: str, agent: Agent = AGENT, send_dtmf: bool = False) -> RealtimeFace:
    return RealtimeFace(dialect, agent, send_dtmf=send_dtmf)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_keypad_input_is_a_user_message_of_input_text(dialect):
    event = orjson.loads(face(dialect).encode(SendUserText("The caller entered 4711 on the keypad.")))
    assert event == {"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text",
                                                        "text": "The caller entered 4711 on the keypad."}]}}
    assert set(event) <= CLIENT_EVENT_FIELDS["conversation.item.create"] and set(event["item"]) <= ITEM_FIELDS
    assert {p["type"] for p in event["item"]["content"]} <= CONTENT_TYPES[dialect]["user"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_committed_turn_is_the_buffer_commit(dialect):
    event = orjson.loads(face(dialect).encode(CommitInput()))
    assert event == {"type": "input_audio_buffer.commit"}
    assert set(event) <= CLIENT_EVENT_FIELDS["input_audio_buffer.commit"]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("purpose", [REPROMPT, GOODBYE])
def test_an_idle_response_adds_its_instructions_to_the_agents(dialect, purpose):
    event = orjson.loads(face(dialect).encode(RequestResponse("Briefly check in.", purpose)))
    assert event["type"] == "response.create" and set(event) <= CLIENT_EVENT_FIELDS["response.create"]
    response = event["response"]
    assert set(response) <= RESPONSE_FIELDS[dialect] and set(response) == {"instructions", "metadata"}
    assert response["instructions"] == "You answer for Acme Plumbing. Speak German.\n\nBriefly check in."
    # metadata: at most 16 pairs, keys up to 64 characters, values up to 512 (§1.3)
    assert response["metadata"] == {"purpose": purpose}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_plain_request_stays_the_bare_response_create(dialect):
    assert face(dialect).encode(RequestResponse()) == b'{"type":"response.create"}'


def test_no_session_sets_the_servers_idle_timeout():
    for mode in ("server_vad", "semantic_vad"):
        agent = Agent(turn_detection=TurnDetection(mode=mode))
        ga = orjson.loads(shapes.session_update("ga", agent))["session"]["audio"]["input"]["turn_detection"]
        beta = orjson.loads(shapes.session_update("beta", agent))["session"]["turn_detection"]
        assert "idle_timeout_ms" not in ga and "idle_timeout_ms" not in beta


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_servers_timeout_event_is_ignored(dialect):
    frame = orjson.dumps({"type": "input_audio_buffer.timeout_triggered", "event_id": "event_T1",
                          "audio_start_ms": 1000, "audio_end_ms": 9000, "item_id": "item_U9"})
    assert face(dialect).decode(frame) == UpstreamIgnored("input_audio_buffer.timeout_triggered")


TOOLS = {"end_call": True, "send_dtmf": True}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_send_dtmf_is_offered_only_where_the_carrier_sends_keys(dialect):
    agent = Agent(tools=parse_tools(TOOLS, {}, dialect=dialect))
    offered = orjson.loads(face(dialect, agent, send_dtmf=True).encode(ConfigureSession()))["session"]
    not_offered = orjson.loads(face(dialect, agent, send_dtmf=False).encode(ConfigureSession()))["session"]
    assert [t["name"] for t in offered["tools"]] == ["end_call", "send_dtmf"]
    assert [t["name"] for t in not_offered["tools"]] == ["end_call"]
    dtmf = offered["tools"][1]
    assert dtmf["parameters"]["required"] == ["digits"] and dtmf["parameters"]["additionalProperties"] is False
    assert dtmf["parameters"]["properties"]["digits"]["pattern"] == "^[0-9*#]{1,32}$"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_send_dtmf_alone_on_a_carrier_without_keys_means_no_tools_at_all(dialect):
    agent = Agent(tools=parse_tools({"send_dtmf": True}, {}, dialect=dialect))
    session = orjson.loads(face(dialect, agent).encode(ConfigureSession()))["session"]
    assert "tools" not in session and "tool_choice" not in session

