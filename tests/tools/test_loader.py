"""The tools file: what it declares, and every mistake reported at once, naming the entry and the field."""

from pathlib import Path

import pytest

from gateway.config import ConfigError, load_settings
from gateway.env import Secret
from gateway.tools.loader import load_tools_file, parse_tools
from gateway.tools.spec import END_CALL_DESCRIPTION, ToolsSpec

REPO = Path(__file__).resolve().parents[2]
ORDER_TOOL = {
    "name": "order_status", "description": "Order status by number.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string", "pattern": "^[0-9]+$"}},
                   "required": ["order_id"]},
    "url": "https://orders.example.com/v1/orders/{order_id}",
    "headers": {"Authorization": "Bearer ${ORDER_API_KEY}", "Accept": "application/json"},
}
ENV = {"ORDER_API_KEY": "order-key-abcdef"}


def errors_of(data, environ=ENV, dialect="ga") -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_tools(data, environ, source="tools.yaml", dialect=dialect)
    return list(info.value.errors)


def test_a_full_file():
    spec = parse_tools({"http_tools": [ORDER_TOOL], "end_call": True, "transfer_call": {
        "max_wait_s": 8, "destinations": {"sales": {"number": "+14155550100", "handoff": "Connecting you."},
                                          "support": {"sip": "sip:support@pbx.example.com"}}}}, ENV)
    tool = spec.http[0]
    assert (tool.method, tool.placeholders, tool.timeout_s, tool.max_response_bytes) == (
        "GET", ("order_id",), 5.0, 16384)
    assert tool.headers == (("Authorization", Secret("Bearer order-key-abcdef")), ("Accept", "application/json"))
    assert "order-key" not in repr(spec)
    assert spec.names() == ("order_status", "end_call", "transfer_call")
    assert spec.end_call is not None and spec.end_call.description == END_CALL_DESCRIPTION
    assert spec.transfer_call is not None and spec.transfer_call.max_wait_s == 8
    assert [(d.name, d.target, d.handoff) for d in spec.transfer_call.destinations] == [
        ("sales", "+14155550100", "Connecting you."), ("support", "sip:support@pbx.example.com", None)]
    assert [s.reveal() for s in spec.secrets()] == ["Bearer order-key-abcdef"]


def test_env_references_with_defaults_in_urls():
    tool = {**ORDER_TOOL, "url": "${ORDER_API_URL:-http://127.0.0.1:8080/demo}/orders/{order_id}"}
    assert parse_tools({"http_tools": [tool]}, ENV).http[0].url == "http://127.0.0.1:8080/demo/orders/{order_id}"
    env = {**ENV, "ORDER_API_URL": "https://api.example.com"}
    assert parse_tools({"http_tools": [tool]}, env).http[0].url == "https://api.example.com/orders/{order_id}"


def test_every_mistake_at_once_named_by_entry_and_field():
    errors = errors_of({
        "http_tools": [
            {**ORDER_TOOL, "url": "ftp://x/{order_id}", "timeout_s": 0, "method": "FETCH"},
            {**ORDER_TOOL, "name": "lookup", "headers": {"X-Api-Key": "sk-literal-secret"}},
            {**ORDER_TOOL, "name": "end_call"},
            {"name": "bad name!", "description": "x", "url": "https://h/{missing}", "colour": "red"},
            {**ORDER_TOOL, "name": "schema", "parameters": {"type": "object", "properties": {"a": {"type": 5}}}},
        ],
        "transfer_call": {"destinations": {"sales": {"number": "555-0100"}, "ops": {"sip": "tel:123"},
                                           "both": {"number": "+14155550100", "sip": "sip:x@y"}}},
        "end_call": {"max_wait_s": 600},
        "extra": 1,
    }, environ={})
    text = "\n".join(errors)
    assert all(e.startswith("TOOLS_FILE tools.yaml: ") for e in errors)
    for expected in (
        "the file: unknown field extra",
        "http_tools[0] (order_status).method: must be one of GET, POST, PUT, PATCH, DELETE",
        "http_tools[0] (order_status).url: must be an absolute http or https URL",
        "http_tools[0] (order_status).timeout_s: must be a number from 0.1 to 60",
        "http_tools[0] (order_status).headers.Authorization: references ${ORDER_API_KEY}, which is not set",
        "http_tools[1] (lookup).headers.X-Api-Key: looks like a credential",
        "http_tools[2] (end_call).name: end_call is a built-in",
        "http_tools[3] (bad name!).name: must be 1 to 64 letters",
        "http_tools[3] (bad name!): unknown field colour",
        "http_tools[3] (bad name!).url: the placeholder {missing} must be a required parameter",
        "http_tools[4] (schema).parameters.properties.a.type: is not a valid JSON Schema",
        "transfer_call.destinations.sales.number: must be an E.164 number",
        "transfer_call.destinations.ops.sip: must be a SIP URI",
        "transfer_call.destinations.both: needs exactly one of number (E.164) or sip",
        "end_call.max_wait_s: must be a number from 1 to 60",
    ):
        assert expected in text, f"{expected!r} not in:\n{text}"
    assert "sk-literal-secret" not in text  # a literal secret is refused without being repeated


def test_placeholders_never_in_the_host():
    errors = errors_of({"http_tools": [{**ORDER_TOOL, "url": "https://{order_id}.example.com/x"}]})
    assert "placeholders may only be in the path and the query, never in the host" in errors[0]


def test_duplicate_names_and_labels():
    errors = errors_of({"http_tools": [ORDER_TOOL, ORDER_TOOL],
                        "mcp_servers": [{"label": "docs", "url": "https://m/mcp"}, {"label": "docs", "url": "https://m"}]})
    assert any("order_status is defined twice" in e for e in errors)
    assert any("mcp_servers[1] (docs).label" in e for e in errors)


def test_mcp_needs_ga_and_never_asks_for_approval():
    mcp = {"label": "docs", "url": "https://mcp.example.com/mcp", "require_approval": "always"}
    errors = errors_of({"mcp_servers": [mcp]}, dialect="beta")
    assert any("require_approval: must be never" in e for e in errors)
    assert any("MCP servers need the GA Realtime dialect" in e for e in errors)
    ok = parse_tools({"mcp_servers": [{**mcp, "require_approval": "never"}]}, {}, dialect="ga")
    assert ok.mcp[0].label == "docs" and ok.names() == ()


def test_a_transfer_needs_destinations():
    assert any("must name at least one destination" in e for e in errors_of({"transfer_call": {}}))


def test_empty_or_absent_file_means_no_tools(tmp_path):
    assert load_tools_file(None, {}) == ToolsSpec()
    empty = tmp_path / "tools.yaml"
    empty.write_text("# nothing yet\n")
    assert not load_tools_file(str(empty), {})


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match=r"TOOLS_FILE cannot be read: .*nope\.yaml"):
        load_tools_file(str(tmp_path / "nope.yaml"), {})
    bad = tmp_path / "tools.yaml"
    bad.write_text("http_tools:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_tools_file(str(bad), {})
    bad_json = tmp_path / "tools.json"
    bad_json.write_text('{"http_tools": [}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_tools_file(str(bad_json), {})


def test_json_files_too(tmp_path):
    path = tmp_path / "tools.json"
    path.write_text('{"end_call": {"description": "Hang up.", "max_wait_s": 5}}')
    spec = load_tools_file(str(path), {})
    assert spec.end_call is not None and (spec.end_call.description, spec.end_call.max_wait_s) == ("Hang up.", 5)


def test_settings_report_tools_errors_with_the_rest(tmp_path):
    path = tmp_path / "tools.yaml"
    path.write_text("end_call: {max_wait_s: 0}\n")
    with pytest.raises(ConfigError) as info:
        load_settings({"TOOLS_FILE": str(path), "PORT": "nope"})
    assert len(info.value.errors) == 2
    assert any(e.startswith("PORT") for e in info.value.errors)
    assert any("end_call.max_wait_s" in e for e in info.value.errors)


def test_settings_register_tool_secrets_for_redaction(tmp_path):
    path = tmp_path / "tools.yaml"
    path.write_text("http_tools:\n  - name: t\n    description: d\n    url: https://h/x\n"
                    "    headers: {Authorization: 'Bearer ${TOOL_KEY}'}\n")
    settings = load_settings({"TOOLS_FILE": str(path), "TOOL_KEY": "tool-secret-987654"})
    assert "Bearer tool-secret-987654" in settings.secrets() and "tool-secret-987654" in settings.secrets()


def test_beta_upstream_refuses_mcp_at_start_up(tmp_path):
    path = tmp_path / "tools.yaml"
    path.write_text("mcp_servers: [{label: docs, url: 'https://m/mcp'}]\n")
    with pytest.raises(ConfigError, match="MCP servers need the GA Realtime dialect"):
        load_settings({"TOOLS_FILE": str(path), "REALTIME_URL": "ws://127.0.0.1:9/v1/realtime",
                       "REALTIME_DIALECT": "beta"})


def test_the_example_file_loads():
    spec = load_tools_file(str(REPO / "deploy" / "tools.example.yaml"), {})
    assert spec.names() == ("order_status", "end_call", "transfer_call", "send_dtmf")
    assert (spec.keypad.mode, spec.keypad.terminator, spec.keypad.sensitive) == ("collect", "#", False)
    assert spec.http[0].url == "http://127.0.0.1:8080/demo/orders/{order_id}"
    assert spec.transfer_call is not None and [d.name for d in spec.transfer_call.destinations] == ["sales", "support"]


# --- the keypad (dtmf:) and send_dtmf ----------------------------------------------------------------

def test_the_keypad_section():
    spec = parse_tools({"dtmf": {"mode": "collect", "template": "Keys: {digits}", "terminator": "*", "pause_s": 2,
                                 "max_digits": 16, "commit_key": 0, "sensitive": True}}, {})
    k = spec.keypad
    assert (k.mode, k.template, k.terminator, k.pause_s, k.max_digits, k.commit_key, k.sensitive) == (
        "collect", "Keys: {digits}", "*", 2.0, 16, "0", True)
    assert not spec and spec.names() == ()  # the keypad is not a tool
    assert parse_tools({"dtmf": {"terminator": "none"}}, {}).keypad.terminator is None
    assert parse_tools({}, {}).keypad.mode == "off" and parse_tools({"dtmf": {}}, {}).keypad.mode == "digit"


def test_every_keypad_mistake_named_by_its_field():
    errors = errors_of({"dtmf": {"mode": "always", "template": "no placeholder", "terminator": None,
                                 "pause_s": 99, "max_digits": 2.5, "commit_key": "12", "sensitive": "yes",
                                 "colour": "red"}})
    text = "\n".join(errors)
    for expected in (
        "dtmf: unknown field colour",
        "dtmf.mode: must be one of off, digit, collect (got 'always')",
        "dtmf.template: must hold {digits}",
        'dtmf.terminator: is empty: in YAML quote the key ("#": a bare # starts a comment), or write none',
        "dtmf.pause_s: must be a number from 0.5 to 30",
        "dtmf.max_digits: must be a whole number",
        "dtmf.commit_key: must be one key of 0 1 2 3 4 5 6 7 8 9 * # A B C D, or none (got '12')",
        "dtmf.sensitive: must be true or false",
    ):
        assert expected in text, f"{expected!r} not in:\n{text}"


def test_a_bare_hash_in_yaml_is_caught(tmp_path):
    path = tmp_path / "tools.yaml"
    path.write_text("dtmf:\n  mode: collect\n  terminator: #\n")
    with pytest.raises(ConfigError, match=r"dtmf\.terminator: is empty"):
        load_tools_file(str(path), {})


def test_send_dtmf():
    assert parse_tools({"send_dtmf": True}, {}).names() == ("send_dtmf",)
    spec = parse_tools({"send_dtmf": {"description": "Press keys.", "sensitive": True}}, {})
    assert spec.send_dtmf is not None and spec.send_dtmf.description == "Press keys."
    assert spec.sensitive() == frozenset({"send_dtmf"})
    assert spec.functions(send_dtmf=False) == ()
    errors = errors_of({"send_dtmf": {"sensitive": 1, "keys": "all"}})
    assert any("send_dtmf: unknown field keys" in e for e in errors)
    assert any("send_dtmf.sensitive: must be true or false" in e for e in errors)
    assert any("send_dtmf is a built-in" in e for e in errors_of({"http_tools": [{**ORDER_TOOL, "name": "send_dtmf"}]}))


def test_a_commit_key_without_turn_detection_off_is_a_warning(tmp_path):
    path = tmp_path / "tools.yaml"
    path.write_text("dtmf: {commit_key: '#'}\n")
    settings = load_settings({"TOOLS_FILE": str(path)})
    assert any("dtmf.commit_key (#) is only used with TURN_DETECTION=none" in w for w in settings.warnings)
    quiet = load_settings({"TOOLS_FILE": str(path), "TURN_DETECTION": "none"})
    assert not any("commit_key" in w for w in quiet.warnings)
