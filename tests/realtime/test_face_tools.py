"""Function calls through the Realtime face, both dialects: `response.function_call_arguments.done` (GA has
`name`, beta does not: protocol-reference.md §1.4, §2.3) and the function-call item decoded into `ToolCall`;
tool outputs, response requests and restored function items encoded against the field lists of §1.3; the
tools in each dialect's session.update (§1.2, §2.2)."""

import orjson
import pytest

from gateway.config import Agent
from gateway.core.events import (
    Inform,
    ItemAdded,
    RequestResponse,
    RestoreConversation,
    Say,
    SendToolOutput,
    ToolCall,
    UpstreamIgnored,
    UpstreamUnreadable,
)
from gateway.env import Secret
from gateway.realtime import dialect as shapes
from gateway.realtime.face import RealtimeFace
from gateway.tools.loader import parse_tools
from tests.realtime.test_dialect import BETA_SESSION_FIELDS, GA_SESSION_FIELDS
from tests.realtime.test_face import CLIENT_EVENT_FIELDS, ITEM_FIELDS

DIALECTS = ("ga", "beta")
ARGS = '{"order_id":"4711"}'


def face(dialect="ga", agent=None):
    return RealtimeFace(dialect, agent or Agent())


def fc_item(status="in_progress", arguments=""):
    return {"id": "item_F1", "object": "realtime.item", "type": "function_call", "status": status,
            "call_id": "call_1", "name": "order_status", "arguments": arguments}


def arguments_done(dialect, **over):
    event = {"type": "response.function_call_arguments.done", "event_id": "event_F2", "response_id": "resp_1",
             "item_id": "item_F1", "output_index": 0, "call_id": "call_1", "arguments": ARGS}
    if dialect == "ga":
        event["name"] = "order_status"
    return {**event, **over}


def decode(f, event):
    return f.decode(orjson.dumps(event))


@pytest.mark.parametrize("dialect", DIALECTS)
def test_function_call_in_the_order_a_server_sends_it(dialect):
    f = face(dialect)
    added = {"type": "response.output_item.added", "response_id": "resp_1", "output_index": 0, "item": fc_item()}
    assert decode(f, added) == ItemAdded("item_F1", None)
    delta = {"type": "response.function_call_arguments.delta", "response_id": "resp_1", "item_id": "item_F1",
             "output_index": 0, "call_id": "call_1", "delta": ARGS}
    assert decode(f, delta) == UpstreamIgnored("response.function_call_arguments.delta")
    expected = ToolCall("call_1", "order_status", ARGS, "item_F1", "resp_1")
    assert decode(f, arguments_done(dialect)) == expected  # beta: the name remembered from the item
    done = {"type": "response.output_item.done", "response_id": "resp_1", "output_index": 0,
            "item": fc_item("completed", ARGS)}
    assert decode(f, done) == expected  # the same call again: the core runs a call id once


def test_beta_arguments_of_an_item_never_announced_have_no_name():
    assert decode(face("beta"), arguments_done("beta")) == ToolCall("call_1", "", ARGS, "item_F1", "resp_1")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_function_call_item_alone_is_a_call(dialect):
    done = {"type": "response.output_item.done", "response_id": "resp_9", "output_index": 1,
            "item": fc_item("completed", "{}")}
    assert decode(face(dialect), done) == ToolCall("call_1", "order_status", "{}", "item_F1", "resp_9")


@pytest.mark.parametrize("item", [
    {"id": "item_A1", "type": "message", "role": "assistant", "content": []}, {}, None, "item"])
def test_other_items_done_are_ignored(item):
    event = {"type": "response.output_item.done", "response_id": "resp_1", "item": item}
    assert decode(face(), event) == UpstreamIgnored("response.output_item.done")


@pytest.mark.parametrize("over", [{"call_id": None}, {"call_id": ""}, {"call_id": 7}, {"arguments": None},
                                  {"arguments": {"order_id": "4711"}}, {"arguments": 12}])
def test_arguments_done_without_call_id_or_text_is_malformed(over):
    raw = orjson.dumps(arguments_done("ga", **over))
    assert face().decode(raw) == UpstreamUnreadable("malformed_event", "response.function_call_arguments.done",
                                                    len(raw))


def test_arguments_that_are_not_json_are_passed_on_unparsed():
    # The model's text as it wrote it: the runner answers bad JSON with an error output, never the face.
    event = arguments_done("ga", arguments='{"order_id": 47')
    assert decode(face(), event).arguments == '{"order_id": 47'


def test_remembered_names_are_bounded():
    f = face("beta")
    for i in range(200):
        item = {**fc_item(), "id": f"item_{i}", "name": f"tool_{i}"}
        decode(f, {"type": "response.output_item.added", "item": item})
    assert len(f._call_names) <= 64
    assert decode(f, arguments_done("beta", item_id="item_199")).name == "tool_199"


# --- encode ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dialect", DIALECTS)
def test_tool_output_is_a_function_call_output_item(dialect):
    output = '{"status": "shipped", "note": "line\\nbreak \\"quoted\\""}'
    event = orjson.loads(face(dialect).encode(SendToolOutput("call_1", output)))
    assert event == {"type": "conversation.item.create",
                     "item": {"type": "function_call_output", "call_id": "call_1", "output": output}}
    assert set(event) <= CLIENT_EVENT_FIELDS["conversation.item.create"] and set(event["item"]) <= ITEM_FIELDS


@pytest.mark.parametrize("dialect", DIALECTS)
def test_request_response_say_and_inform(dialect):
    f = face(dialect)
    assert orjson.loads(f.encode(RequestResponse())) == {"type": "response.create"}
    say = orjson.loads(f.encode(Say("Connecting you with sales.")))
    assert say["type"] == "response.create" and set(say["response"]) == {"instructions"}
    assert say["response"]["instructions"].endswith("Connecting you with sales.")
    inform = orjson.loads(f.encode(Inform("The transfer failed.")))
    assert inform == {"type": "conversation.item.create", "item": {
        "type": "message", "role": "system", "content": [{"type": "input_text", "text": "The transfer failed."}]}}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_restore_carries_function_calls_and_outputs_in_order(dialect):
    turns = (("user", "Where is my order?"), ("function_call", "call_1", "order_status", ARGS),
             ("function_call_output", "call_1", '{"status":"shipped"}'), ("assistant", "It shipped."))
    frames = [orjson.loads(f) for f in face(dialect).encode(RestoreConversation(turns))]
    items = [f["item"] for f in frames]
    assert [i["type"] for i in items] == ["message", "function_call", "function_call_output", "message"]
    assert items[1] == {"type": "function_call", "call_id": "call_1", "name": "order_status", "arguments": ARGS}
    assert items[2] == {"type": "function_call_output", "call_id": "call_1", "output": '{"status":"shipped"}'}


TOOLS = {
    "http_tools": [{"name": "order_status", "description": "Order status.",
                    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                                   "required": ["order_id"]},
                    "url": "https://orders.example.com/orders/{order_id}"}],
    "mcp_servers": [{"label": "docs", "url": "https://mcp.example.com/mcp",
                     "headers": {"Authorization": "Bearer ${DOCS_TOKEN}"}, "allowed_tools": ["search"]}],
    "end_call": True,
    "transfer_call": {"destinations": {"sales": {"number": "+14155550100"}}},
}


def tools_agent(dialect):
    data = TOOLS if dialect == "ga" else {k: v for k, v in TOOLS.items() if k != "mcp_servers"}
    return Agent(tools=parse_tools(data, {"DOCS_TOKEN": "mcp-token-123456"}, dialect=dialect))


def test_ga_session_has_function_and_mcp_tools():
    session = orjson.loads(shapes.session_update("ga", tools_agent("ga")))["session"]
    assert set(session) <= GA_SESSION_FIELDS
    assert session["tool_choice"] == "auto"
    functions = [t for t in session["tools"] if t["type"] == "function"]
    assert [t["name"] for t in functions] == ["order_status", "end_call", "transfer_call"]
    assert all(set(t) == {"type", "name", "description", "parameters"} for t in functions)
    transfer = functions[2]["parameters"]
    assert transfer["properties"]["destination"]["enum"] == ["sales"] and transfer["required"] == ["destination"]
    assert [t for t in session["tools"] if t["type"] == "mcp"] == [{
        "type": "mcp", "server_label": "docs", "server_url": "https://mcp.example.com/mcp",
        "require_approval": "never", "headers": {"Authorization": "Bearer mcp-token-123456"},
        "allowed_tools": ["search"]}]


def test_beta_session_has_the_same_functions_and_no_mcp():
    session = orjson.loads(shapes.session_update("beta", tools_agent("beta")))["session"]
    assert set(session) <= BETA_SESSION_FIELDS
    assert session["tool_choice"] == "auto"
    assert [t["name"] for t in session["tools"]] == ["order_status", "end_call", "transfer_call"]
    assert {t["type"] for t in session["tools"]} == {"function"}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_tools_no_tool_fields(dialect):
    session = orjson.loads(shapes.session_update(dialect, Agent()))["session"]
    assert "tools" not in session and "tool_choice" not in session


def test_mcp_header_secret_is_a_secret_until_encoded():
    spec = tools_agent("ga").tools
    assert isinstance(spec.mcp[0].headers[0][1], Secret)
    assert "mcp-token" not in repr(spec)
    assert [s.reveal() for s in spec.secrets()] == ["Bearer mcp-token-123456"]
