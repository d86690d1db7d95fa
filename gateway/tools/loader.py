"""Reading the tools file (TOOLS_FILE, YAML or JSON) and checking it, once at start-up.

Every problem of the file is reported at once, each naming the entry and the field
(`http_tools[0] (order_status).url: ...`). Secrets never sit in the file: a header value (or a URL)
names environment variables as `${NAME}` (or `${NAME:-default}`), resolved here; a header whose value
holds one is a `Secret`, registered for log redaction, and a credential-like header (Authorization,
*-Key, *token*, ...) written as a literal is refused.

    http_tools:            functions the gateway runs: an HTTP request with the arguments
      - name, description, parameters (JSON Schema, type object), method, url ({param} placeholders in
        the path or query only), headers, timeout_s, max_response_bytes, error_message, sensitive
    mcp_servers:           remote MCP servers the model calls itself (GA dialect only)
      - label, url, headers, allowed_tools, description
    end_call:              true, or {description, max_wait_s}
    transfer_call:         {description, max_wait_s, destinations: {name: {number | sip, handoff, description}}}
    send_dtmf:             true, or {description, sensitive}
    dtmf:                  the caller's keys: {mode: off | digit | collect, template ({digits}), terminator,
                           pause_s, max_digits, commit_key, sensitive}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import yaml
from jsonschema import SchemaError
from jsonschema.validators import validator_for

from gateway.core import keypad as kp
from gateway.env import ConfigError, Secret
from gateway.filecheck import FileCheck, kind
from gateway.tools.spec import (
    BUILTINS,
    DEFAULT_ERROR,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_WAIT_S,
    DEFAULT_TIMEOUT_S,
    END_CALL,
    END_CALL_DESCRIPTION,
    METHODS,
    SEND_DTMF,
    TRANSFER_CALL,
    TRANSFER_DESCRIPTION,
    Destination,
    EndCallTool,
    Headers,
    HttpTool,
    McpServer,
    SendDtmfTool,
    ToolsSpec,
    TransferTool,
)

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DESTINATION = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SIP = re.compile(r"^sip:\S+$", re.IGNORECASE)  # as Twilio and SignalWire dial it
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CREDENTIAL_HEADER = re.compile(r"auth|token|secret|key|password|cookie|session", re.IGNORECASE)
_NO_KEY = ("none", "off")  # dtmf.terminator / commit_key: no such key


class _Check(FileCheck):
    """Collects every problem of the file, each prefixed with where it is; resolves ${NAME} references."""

    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        super().__init__("TOOLS_FILE", source)
        self.environ = environ

    def resolve(self, value: str, where: str) -> tuple[str, bool]:
        """`value` with its ${NAME} references resolved; True when it had any."""
        missing = []

        def sub(m: re.Match[str]) -> str:
            found = self.environ.get(m.group(1))
            if found:
                return found
            if m.group(2) is not None:
                return m.group(2)
            missing.append(m.group(1))
            return ""

        resolved = _ENV_REF.sub(sub, value)
        for name in missing:
            self.error(where, f"references ${{{name}}}, which is not set in the environment")
        return resolved, resolved != value or bool(missing)

    def headers(self, value: Any, where: str) -> Headers:
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.error(where, f"must be a mapping of header names to values (got {kind(value)})")
            return ()
        out: list[tuple[str, Secret | str]] = []
        for name, raw in value.items():
            at = f"{where}.{name}"
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                self.error(at, "is not a valid HTTP header name")
                continue
            if not isinstance(raw, str):
                self.error(at, f"must be a string (got {kind(raw)})")
                continue
            resolved, from_env = self.resolve(raw, at)
            if not from_env and _CREDENTIAL_HEADER.search(name):
                self.error(at, "looks like a credential: put the value in an environment variable and write "
                           f"${{NAME}} here (e.g. {name}: \"Bearer ${{MY_API_KEY}}\"); secrets never go in the file")
                continue
            out.append((name, Secret(resolved) if from_env else resolved))
        return tuple(out)

    def url(self, entry: dict[str, Any], where: str) -> str | None:
        raw = self.text(entry, "url", where, required=True)
        if raw is None:
            return None
        url, _ = self.resolve(raw, f"{where}.url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.error(f"{where}.url", "must be an absolute http or https URL")
            return None
        if "{" in parts.netloc or "}" in parts.netloc:
            self.error(f"{where}.url", "placeholders may only be in the path and the query, never in the host")
            return None
        return url


def _parameters(check: _Check, entry: dict[str, Any], where: str) -> dict[str, Any]:
    schema = entry.get("parameters", {"type": "object", "properties": {}})
    at = f"{where}.parameters"
    if not isinstance(schema, dict) or schema.get("type") != "object":
        check.error(at, "must be a JSON Schema of type object (type: object, properties: ...)")
        return {"type": "object", "properties": {}}
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        check.error(at + path, f"is not a valid JSON Schema: {exc.message}")
    return schema


def _http_tool(check: _Check, entry: Any, where: str, taken: set[str]) -> HttpTool | None:
    fields = ("name", "description", "parameters", "method", "url", "headers", "timeout_s", "max_response_bytes",
              "error_message", "sensitive")
    name = entry.get("name") if isinstance(entry, dict) else None
    where = f"{where} ({name})" if isinstance(name, str) and name else where
    if check.mapping(entry, where, fields) is None:
        return None
    name = check.text(entry, "name", where, required=True)
    if name is not None:
        if not _NAME.match(name):
            check.error(f"{where}.name", "must be 1 to 64 letters, digits, _ or -")
        elif name in BUILTINS:
            check.error(f"{where}.name", f"{name} is a built-in: enable it with its own section ({name}:)")
        elif name in taken:
            check.error(f"{where}.name", f"{name} is defined twice")
        taken.add(name)
    description = check.text(entry, "description", where, required=True)
    parameters = _parameters(check, entry, where)
    method = str(entry.get("method", "GET")).upper()
    if method not in METHODS:
        check.error(f"{where}.method", f"must be one of {', '.join(METHODS)} (got {entry.get('method')!r})")
    url = check.url(entry, where)
    placeholders: tuple[str, ...] = ()
    if url is not None:
        placeholders = tuple(dict.fromkeys(_PLACEHOLDER.findall(url)))
        required = parameters.get("required") or []
        for p in placeholders:
            if p not in (parameters.get("properties") or {}) or p not in required:
                check.error(f"{where}.url", f"the placeholder {{{p}}} must be a required parameter "
                            "(parameters.properties and parameters.required)")
    headers = check.headers(entry.get("headers"), f"{where}.headers")
    timeout = check.number(entry, "timeout_s", where, DEFAULT_TIMEOUT_S, 0.1, 60.0)
    cap = check.number(entry, "max_response_bytes", where, DEFAULT_MAX_RESPONSE_BYTES, 1, 1024 * 1024)
    error = check.text(entry, "error_message", where) or DEFAULT_ERROR.format(name=name)
    sensitive = check.flag(entry, "sensitive", where, False)
    if name is None or description is None or url is None:
        return None
    return HttpTool(name, description, parameters, method, url, placeholders, headers, timeout, int(cap), error,
                    sensitive)


def _mcp_server(check: _Check, entry: Any, where: str, taken: set[str]) -> McpServer | None:
    label = entry.get("label") if isinstance(entry, dict) else None
    where = f"{where} ({label})" if isinstance(label, str) and label else where
    if check.mapping(entry, where, ("label", "url", "headers", "allowed_tools", "description",
                                    "require_approval")) is None:
        return None
    label = check.text(entry, "label", where, required=True)
    if label is not None and (not _NAME.match(label) or label in taken):
        check.error(f"{where}.label", "must be 1 to 64 letters, digits, _ or -, and unique")
    taken.add(label or "")
    approval = entry.get("require_approval", "never")
    if approval != "never":
        check.error(f"{where}.require_approval", "must be never: a phone call cannot stop to approve a tool call")
    allowed = entry.get("allowed_tools")
    if allowed is not None and (not isinstance(allowed, list) or not all(isinstance(t, str) and t for t in allowed)):
        check.error(f"{where}.allowed_tools", "must be a list of tool names")
        allowed = None
    url = check.url(entry, where)
    headers = check.headers(entry.get("headers"), f"{where}.headers")
    description = check.text(entry, "description", where)
    if label is None or url is None:
        return None
    return McpServer(label, url, headers, tuple(allowed) if allowed is not None else None, description)


def _end_call(check: _Check, value: Any) -> EndCallTool | None:
    if value is None or value is False:
        return None
    if value is True:
        return EndCallTool()
    if check.mapping(value, END_CALL, ("description", "max_wait_s")) is None:
        return None
    return EndCallTool(check.text(value, "description", END_CALL, default=END_CALL_DESCRIPTION) or "",
                       check.number(value, "max_wait_s", END_CALL, DEFAULT_MAX_WAIT_S, 1.0, 60.0))


def _transfer_call(check: _Check, value: Any) -> TransferTool | None:
    if value is None or value is False:
        return None
    if check.mapping(value, TRANSFER_CALL, ("description", "max_wait_s", "destinations")) is None:
        return None
    where = f"{TRANSFER_CALL}.destinations"
    raw = value.get("destinations")
    if not isinstance(raw, dict) or not raw:
        check.error(where, "must name at least one destination (name: {number: +E.164} or {sip: sip:...})")
        raw = {}
    destinations = []
    for name, entry in raw.items():
        at = f"{where}.{name}"
        if not isinstance(name, str) or not _DESTINATION.match(name):
            check.error(at, "a destination's name must be 1 to 40 letters, digits, _ or -")
            continue
        if check.mapping(entry, at, ("number", "sip", "handoff", "description")) is None:
            continue
        number, sip = entry.get("number"), entry.get("sip")
        if (number is None) == (sip is None):
            check.error(at, "needs exactly one of number (E.164) or sip (a sip: URI)")
            continue
        if number is not None and not (isinstance(number, str) and _E164.match(number)):
            check.error(f"{at}.number", f"must be an E.164 number such as +14155550100 (got {number!r})")
            continue
        if sip is not None and not (isinstance(sip, str) and _SIP.match(sip)):
            check.error(f"{at}.sip", f"must be a SIP URI such as sip:desk@pbx.example.com (got {sip!r})")
            continue
        destinations.append(Destination(name, number or sip, check.text(entry, "handoff", at),
                                        check.text(entry, "description", at)))
    return TransferTool(tuple(destinations),
                        check.text(value, "description", TRANSFER_CALL, default=TRANSFER_DESCRIPTION) or "",
                        check.number(value, "max_wait_s", TRANSFER_CALL, DEFAULT_MAX_WAIT_S, 1.0, 60.0))


def _send_dtmf(check: _Check, value: Any) -> SendDtmfTool | None:
    if value is None or value is False:
        return None
    if value is True:
        return SendDtmfTool()
    if check.mapping(value, SEND_DTMF, ("description", "sensitive")) is None:
        return None
    return SendDtmfTool(check.text(value, "description", SEND_DTMF) or SendDtmfTool.description,
                        check.flag(value, "sensitive", SEND_DTMF, False))


def _key(check: _Check, entry: dict[str, Any], name: str, default: str | None) -> str | None:
    """One keypad key (0-9, *, #, A-D), or None for none."""
    if name not in entry:
        return default
    value = entry[name]
    where = f"dtmf.{name}"
    if value is None:
        check.error(where, 'is empty: in YAML quote the key ("#": a bare # starts a comment), or write none')
        return default
    if value is False or (isinstance(value, str) and value.lower() in _NO_KEY):
        return None
    key = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(key, str) or len(key) != 1 or key not in kp.KEYS:
        check.error(where, f"must be one key of {' '.join(kp.KEYS)}, or none (got {value!r})")
        return default
    return key


def _keypad(check: _Check, value: Any) -> kp.Keypad:
    """The dtmf: section: what the caller's key presses become."""
    if value is None or value is False:
        return kp.Keypad()
    fields = ("mode", "template", "terminator", "pause_s", "max_digits", "commit_key", "sensitive")
    if check.mapping(value, "dtmf", fields) is None:
        return kp.Keypad()
    mode = value.get("mode", kp.DIGIT)
    if mode not in kp.MODES:
        check.error("dtmf.mode", f"must be one of {', '.join(kp.MODES)} (got {mode!r})")
        mode = kp.OFF
    template = check.text(value, "template", "dtmf")
    if template is not None and (kp.PLACEHOLDER not in template or len(template) > 300):
        check.error("dtmf.template", f"must hold {kp.PLACEHOLDER} (where the keys go) and be at most 300 characters")
    terminator, commit_key = _key(check, value, "terminator", "#"), _key(check, value, "commit_key", None)
    pause = check.number(value, "pause_s", "dtmf", 3.0, 0.5, 30.0)
    longest = check.number(value, "max_digits", "dtmf", 32, 1, kp.MAX_DIGITS)
    if longest != int(longest):
        check.error("dtmf.max_digits", f"must be a whole number (got {longest:g})")
    return kp.Keypad(mode, template, terminator, pause, int(longest), commit_key,
                     check.flag(value, "sensitive", "dtmf", False))


def parse_tools(data: Any, environ: Mapping[str, str], *, source: str = "(inline)",
                dialect: str | None = "ga") -> ToolsSpec:
    """The tools of a parsed file; raises one ConfigError listing every problem."""
    check = _Check(source, environ)
    if data is None:
        data = {}
    sections = ("http_tools", "mcp_servers", "end_call", "transfer_call", "send_dtmf", "dtmf")
    if check.mapping(data, "the file", sections) is None:
        raise ConfigError.of(check.errors)
    names: set[str] = set()
    labels: set[str] = set()
    http, mcp = [], []
    for key, build, taken, out in (("http_tools", _http_tool, names, http), ("mcp_servers", _mcp_server, labels, mcp)):
        entries = data.get(key) or []
        if not isinstance(entries, list):
            check.error(key, f"must be a list (got {kind(entries)})")
            continue
        for i, entry in enumerate(entries):
            built = build(check, entry, f"{key}[{i}]", taken)
            if built is not None:
                out.append(built)
    if mcp and dialect == "beta":
        check.error("mcp_servers", "MCP servers need the GA Realtime dialect; this upstream speaks beta "
                    "(REALTIME_DIALECT=beta, or Azure's preview route): remove mcp_servers or use the GA route")
    spec = ToolsSpec(tuple(http), tuple(mcp), _end_call(check, data.get("end_call")),
                     _transfer_call(check, data.get("transfer_call")), _send_dtmf(check, data.get("send_dtmf")),
                     _keypad(check, data.get("dtmf")), source)
    if check.errors:
        raise ConfigError.of(check.errors)
    return spec


def load_tools_file(path: str | None, environ: Mapping[str, str], dialect: str | None = "ga") -> ToolsSpec:
    """Read TOOLS_FILE (JSON when it ends in .json, else YAML) and check it; ConfigError lists every problem.
    No file: no tools."""
    if not path:
        return ToolsSpec()
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"TOOLS_FILE cannot be read: {path} ({exc.strerror})") from None
    try:
        data = orjson.loads(raw) if path.endswith(".json") else yaml.safe_load(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"TOOLS_FILE {path}: not valid JSON ({exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"TOOLS_FILE {path}: not valid YAML{where} ({problem})") from None
    return parse_tools(data, environ, source=path, dialect=dialect)
