"""Plivo's webhook side: the XML we answer with, and the checks on what Plivo sends us.

Pure functions, no I/O.

The answer is Plivo XML written with the standard library's ElementTree (it escapes every value): the
`plivo` package's XML builder would pull in `requests`, `lxml`, `six`, `decorator` and `PyJWT` for
three elements, and its REST client is synchronous. The answer is one `<Stream>` (Plivo's "Stream XML"
reference, docs.plivo.com/docs/voice/xml/audiostream): the WebSocket URL as the element's text,
`bidirectional="true"` (Plivo then accepts `playAudio`), `audioTrack="inbound"` (the only track allowed
with bidirectional), `keepCallAlive="true"` (the stream runs alone; the call ends with it, as nothing
follows it in the document) and `contentType="audio/x-mulaw;rate=8000"`, set explicitly because
Plivo's pages disagree on the default (audio/x-l16;rate=8000 on the XML reference, μ-law on the
overview).

The stream's parameters travel in `extraHeaders`, which come back as `extra_headers` in the stream's
`start`. Plivo allows only letters and digits in it (besides the `=` and `,` of its own example), so
every value is written as the hex of its UTF-8 bytes: `token=7631...,from=2b31...`; the stream face
decodes them (`decode_extra_headers`).

Signatures (Plivo's "V3" scheme, as its Python SDK computes it in `plivo/utils/signature_v3.py`):
`X-Plivo-Signature-V3` is the base64 HMAC-SHA256, keyed by the Auth Token, of

    <URL without its query>?<query params sorted>[.]<POST params sorted, name+value concatenated>.<nonce>

where the query part is `name=value` pairs joined by `&` (present only when the URL has a query, or
when the POST has fields: then the `?` is written even for an empty query), the `.` between the query
and the POST params only when both are there, and `<nonce>` is `X-Plivo-Signature-V3-Nonce`. For a GET,
the request's params join the URL's query and there is no POST part. The header may hold several
signatures separated by commas (one per token of the account); any one matching is enough.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlsplit

from gateway.carriers.base import InboundCall, WebhookRequest
from gateway.env import Secret

SIGNATURE_HEADER = "X-Plivo-Signature-V3"
NONCE_HEADER = "X-Plivo-Signature-V3-Nonce"
CONTENT_TYPE = "audio/x-mulaw;rate=8000"
EXTRA_HEADERS_MAX_BYTES = 512  # Plivo's limit on extraHeaders
PARAMETER_MAX_CHARS = 40  # per value other than the token, before hex (from and to numbers)
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
PARAMETER_NAME = re.compile(r"^[A-Za-z0-9]{1,32}$")
HEX = re.compile(r"^(?:[0-9a-fA-F]{2})+$")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, case-insensitively also when `headers` is a plain dict."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


# --- XML -------------------------------------------------------------------------------------------


def _document(root: ET.Element) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")


def encode_extra_headers(parameters: Mapping[str, str]) -> str:
    """`name=hex(value)` pairs joined by commas. Names must be letters and digits; values other than the
    token are cut to 40 characters. ValueError when the result is over Plivo's 512 bytes."""
    pairs = []
    for name, value in parameters.items():
        if not PARAMETER_NAME.match(name):
            raise ValueError(f"stream parameter names must be letters and digits (got {name!r})")
        kept = value if name == "token" else value[:PARAMETER_MAX_CHARS]
        pairs.append(f"{name}={kept.encode().hex()}")
    out = ",".join(pairs)
    if len(out) > EXTRA_HEADERS_MAX_BYTES:
        raise ValueError(f"extraHeaders would be {len(out)} bytes, over Plivo's {EXTRA_HEADERS_MAX_BYTES}")
    return out


def decode_extra_headers(value: str) -> dict[str, str]:
    """The parameters of `encode_extra_headers`, from a stream's `extra_headers`. Pairs may be separated by
    `,` (Plivo's XML examples) or `;` (its start-event example); a value that is not our hex is kept as
    it came, and a pair without `=` is skipped."""
    out: dict[str, str] = {}
    for pair in re.split(r"[,;]", value):
        name, sep, raw = pair.strip().partition("=")
        if not sep or not name:
            continue
        text = raw.strip()
        if HEX.match(text):
            try:
                text = bytes.fromhex(text).decode()
            except UnicodeDecodeError:
                text = raw.strip()
        out[name.strip()] = text
    return out


def answer_xml(stream_url: str, parameters: Mapping[str, str]) -> str:
    """`<Response><Stream ...>stream_url</Stream></Response>`: a bidirectional μ-law stream that holds the
    call, with `parameters` in `extraHeaders`."""
    response = ET.Element("Response")
    stream = ET.SubElement(response, "Stream", {
        "bidirectional": "true",
        "audioTrack": "inbound",
        "keepCallAlive": "true",
        "contentType": CONTENT_TYPE,
    })
    if parameters:
        stream.set("extraHeaders", encode_extra_headers(parameters))
    stream.text = stream_url
    return _document(response)


def busy_xml(message: str) -> str:
    """Say `message` (`<Speak>`) and hang up (`<Hangup>`)."""
    response = ET.Element("Response")
    ET.SubElement(response, "Speak").text = message
    ET.SubElement(response, "Hangup")
    return _document(response)


def dial_xml(target: str, message: str | None = None) -> str:
    """Optionally say `message`, then `<Dial>` `target`: a phone number (`<Number>`, E.164 as Plivo's
    Dial page writes it) or a SIP URI (`<User>`, Plivo's element for a SIP endpoint)."""
    response = ET.Element("Response")
    if message:
        ET.SubElement(response, "Speak").text = message
    dial = ET.SubElement(response, "Dial")
    ET.SubElement(dial, "User" if target.startswith(("sip:", "sips:")) else "Number").text = target
    return _document(response)


# --- checks ----------------------------------------------------------------------------------------


def _pairs(fields: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every (name, value) of a form or a query, each value of a repeated name included."""
    getall = getattr(fields, "getall", None)
    if getall is not None:
        return [(name, value) for name in dict.fromkeys(fields.keys()) for value in getall(name)]
    return [(name, value) for name, value in fields.items()]


def _sorted_query(pairs: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def signing_string(method: str, url: str, fields: Mapping[str, str], nonce: str) -> str:
    """What Plivo signs with V3 (see the module's docstring): for a POST `fields` are its form fields,
    for a GET the request's params (they join the URL's query)."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    if method.upper() == "GET":
        sorted_query = _sorted_query([*query, *_pairs(fields)])
        signed = base + ("?" + sorted_query if sorted_query else "")
    else:
        post = _pairs(fields)
        sorted_query = _sorted_query(query)
        if post:
            signed = (base + "?" + sorted_query + ("." if sorted_query else "")
                      + "".join(name + value for name, value in sorted(post)))
        else:
            signed = base + ("?" + sorted_query if sorted_query else "")
    return f"{signed}.{nonce}"


def signature_of(auth_token: str, method: str, url: str, fields: Mapping[str, str], nonce: str) -> str:
    """The V3 signature Plivo would send for this request."""
    mac = hmac.new(auth_token.encode(), signing_string(method, url, fields, nonce).encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def signature_valid(auth_token: Secret | None, request: WebhookRequest) -> bool:
    """The request's X-Plivo-Signature-V3 (one of its comma-separated values) matches. True when no Auth
    Token is configured; False when the signature or the nonce header is missing."""
    if not auth_token:
        return True
    signatures = header(request.headers, SIGNATURE_HEADER)
    nonce = header(request.headers, NONCE_HEADER)
    if not signatures or not nonce:
        return False
    method = request.method.upper()
    fields = request.form if method == "POST" else {}  # a GET's params are the URL's query, signed with it
    expected = signature_of(auth_token.reveal(), method, request.url, fields, nonce).encode()
    return any(hmac.compare_digest(expected, candidate.strip().encode()) for candidate in signatures.split(","))


def call_uuid_valid(call_uuid: str | None) -> bool:
    """A Plivo CallUUID: a UUID (answer webhook `CallUUID`, stream `start.callId`)."""
    return call_uuid is not None and UUID.match(call_uuid) is not None


def webhook_fields(request: WebhookRequest) -> Mapping[str, str]:
    """Where Plivo's answer webhook carries the call: the form of a POST (its default), the query of a GET."""
    method = request.method.upper()
    return request.form if method == "POST" else request.query if method == "GET" else {}


def inbound_call(fields: Mapping[str, str], call_uuid: str) -> InboundCall:
    """The call the answer webhook describes (numbers as Plivo sends them: without a `+`)."""
    extra = {name: fields[name] for name in ("CallStatus", "Event", "CallerName") if fields.get(name)}
    return InboundCall(call_id=call_uuid, account_id=None, from_number=fields.get("From") or None,
                       to_number=fields.get("To") or None, direction=fields.get("Direction") or None,
                       extra=extra)
