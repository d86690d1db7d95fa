"""Vonage's webhook side: the NCCO we answer with, and the checks on what Vonage sends us.

Pure functions, no I/O. Sources, all on developer.vonage.com:

- Answer webhook (Voice API Webhooks Reference, /en/voice/voice-api/webhook-reference#answer-webhook): a
  GET by default, its fields in the query (`to`, `from`, `uuid`, `conversation_uuid`, `region_url`, ...);
  a POST with the same fields as a JSON body when the application's `answer_method` is POST. Numbers come
  without a `+`. `uuid` identifies the call (the leg we control over REST), `conversation_uuid` is
  `CON-<uuid>`, `region_url` is "the regional API endpoint which should be used to control the call".
- The answer is an NCCO, a JSON array of actions (NCCO reference, /en/voice/voice-api/ncco-reference). Ours
  is one `connect` to a `websocket` endpoint (WebSockets guide, /en/voice/voice-api/concepts/websockets):
  `uri`, `content-type` `audio/l16;rate=8000|16000`, and `headers`, "key/value pairs ... with a maximum length
  of 512 bytes", which come back at the top level of the socket's first message, `websocket:connected`.
  The stream's parameters (the single-use stream token, the numbers) and the call's `uuid` travel there:
  that message is the only place Vonage names anything about the call. The call ends when the NCCO does,
  so the busy answer is a `talk` alone.
- Signed webhooks ("Decoding signed webhooks", /en/getting-started/concepts/webhooks#decoding-signed-webhooks,
  on by default for new Voice applications): `Authorization: Bearer <JWT>`, HS256 with the account's
  signature secret, claims `iat` (Unix seconds), `jti`, `iss` ("Vonage"), `payload_hash` ("a SHA-256 hash of
  the request payload"), `api_key`, optional `application_id`. Vonage's support article on Voice payload
  hashes says the payload of a GET is its query parameters as a compact JSON object, in their order
  (api.support.vonage.com/hc/en-us/articles/19033783342876): that is what a GET's hash is checked against,
  the raw body for a POST. The token carries no `exp` (the sample has none), so its age is checked from
  `iat`: at most `MAX_AGE_S` old and not from the future beyond `LEEWAY_S`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import warnings
from collections.abc import Mapping
from typing import Any

import jwt
import orjson
from jwt.warnings import InsecureKeyLengthWarning

from gateway.carriers.base import Fallback, InboundCall, WebhookRequest
from gateway.env import Secret

CONTENT_TYPE = "audio/l16;rate={rate}"
HEADERS_MAX_BYTES = 512  # Vonage's limit on the websocket endpoint's headers
PARAMETER_MAX_CHARS = 64  # per value but the token (numbers, SIP addresses)
CALL_HEADER = "call_uuid"  # the header that carries the call's uuid back in websocket:connected
REGION_HEADER = "region_url"
RESERVED_HEADERS = frozenset({"event", "content-type", CALL_HEADER, REGION_HEADER})
MAX_AGE_S = 300.0  # a signed webhook's JWT older than this is refused
LEEWAY_S = 60.0  # clock skew allowed for an `iat` in the future
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
CONVERSATION_UUID = re.compile(r"^CON-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Vonage's Voice API hosts: api.nexmo.com, api.vonage.com and the regional api-<region>.vonage.com.
REGION_URL = re.compile(r"^https://api(?:-[a-z0-9]{1,12}(?:-[a-z0-9]{1,12}){0,3})?\.(?:vonage|nexmo)\.com$")
PHONE_NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$")  # E.164
SIP_URI = re.compile(r"^sips?:[^\s\"'<>]{3,250}$", re.IGNORECASE)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, case-insensitively also when `headers` is a plain dict."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


# --- NCCO ------------------------------------------------------------------------------------------


def _json(ncco: list[dict[str, Any]]) -> str:
    return orjson.dumps(ncco).decode()


def stream_headers(call_uuid: str, parameters: Mapping[str, str], region_url: str | None = None) -> dict[str, str]:
    """The websocket endpoint's `headers`: the call's uuid, its region and the stream's parameters (values
    but the token cut to 64 characters). ValueError for a parameter name Vonage's message already uses, or
    when the whole is over Vonage's 512 bytes."""
    headers = {CALL_HEADER: call_uuid}
    if region_url and REGION_URL.match(region_url):
        headers[REGION_HEADER] = region_url
    for name, value in parameters.items():
        if name in RESERVED_HEADERS:
            raise ValueError(f"stream parameter name {name!r} is reserved")
        headers[name] = value if name == "token" else value[:PARAMETER_MAX_CHARS]
    size = len(orjson.dumps(headers))
    if size > HEADERS_MAX_BYTES:
        raise ValueError(f"the websocket headers would be {size} bytes, over Vonage's {HEADERS_MAX_BYTES}")
    return headers


def answer_ncco(stream_url: str, rate: int, headers: Mapping[str, str]) -> str:
    """`[{"action": "connect", "endpoint": [{"type": "websocket", ...}]}]`: the call's audio, both ways, on
    our WebSocket, as L16 at `rate`."""
    endpoint = {"type": "websocket", "uri": stream_url, "content-type": CONTENT_TYPE.format(rate=rate),
                "headers": dict(headers)}
    return _json([{"action": "connect", "endpoint": [endpoint]}])


def talk_ncco(message: str) -> list[dict[str, Any]]:
    """Say `message`; the call ends with the NCCO."""
    return [{"action": "talk", "text": message}]


def busy_ncco(message: str) -> str:
    return _json(talk_ncco(message))


def connect_ncco(target: str, from_number: str | None = None) -> list[dict[str, Any]]:
    """Connect the call to `target`: an E.164 number (a `phone` endpoint, digits without the `+`) or a SIP URI
    (a `sip` endpoint). `from_number` (digits) is the caller id shown, one of the account's numbers: the
    number the caller dialed. ValueError for any other target."""
    if PHONE_NUMBER.match(target):
        endpoint: dict[str, str] = {"type": "phone", "number": target[1:]}
    elif SIP_URI.match(target):
        endpoint = {"type": "sip", "uri": target}
    else:
        raise ValueError("the transfer target is neither an E.164 number nor a sip: URI")
    action: dict[str, Any] = {"action": "connect", "endpoint": [endpoint]}
    if from_number and from_number.lstrip("+").isdigit():
        action["from"] = from_number.lstrip("+")
    return [action]


def fallback_ncco(fallback: Fallback, from_number: str | None = None) -> list[dict[str, Any]]:
    """Dial the fallback number when one is set; otherwise say the apology (the call then ends)."""
    if fallback.number:
        return connect_ncco(fallback.number, from_number)
    return talk_ncco(fallback.message)


# --- checks ----------------------------------------------------------------------------------------


def payload_hashes(request: WebhookRequest) -> list[str]:
    """The SHA-256 hex digests a signed webhook's `payload_hash` may hold for this request: the raw body (and
    the same JSON written compactly), and for a GET (or a bodiless request) its query parameters as a compact
    JSON object in their order."""
    out = []
    if request.body:
        out.append(hashlib.sha256(request.body).hexdigest())
        try:  # the same JSON body written compactly, as the support article describes the hashing
            compact = orjson.dumps(orjson.loads(request.body))
        except orjson.JSONDecodeError:
            compact = request.body
        if compact != request.body:
            out.append(hashlib.sha256(compact).hexdigest())
    if request.method.upper() == "GET" or not request.body:
        query = dict(request.query.items())
        out.append(hashlib.sha256(orjson.dumps(query)).hexdigest())
    return out


def signature_problem(secret: Secret | None, request: WebhookRequest, now: float | None = None,
                      application_id: str | None = None) -> str | None:
    """Why the webhook's signed-webhook JWT is not valid (a short reason, no secret in it), None when it is
    (or when no signature secret is configured). `now` is Unix seconds (default: the clock)."""
    if not secret:
        return None
    authorization = header(request.headers, "Authorization") or ""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "no bearer token"
    try:
        with warnings.catch_warnings():  # the secret's length is the account's choice, not ours to warn about
            warnings.simplefilter("ignore", InsecureKeyLengthWarning)
            claims = jwt.decode(token.strip(), secret.reveal(), algorithms=["HS256"],
                                options={"require": ["iat"], "verify_iat": False})
    except jwt.ExpiredSignatureError:
        return "token expired"
    except jwt.InvalidTokenError as exc:
        return f"invalid token ({type(exc).__name__})"
    now = time.time() if now is None else now
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        return "iat is not a number"
    if iat > now + LEEWAY_S:
        return "token issued in the future"
    if now - iat > MAX_AGE_S:
        return "token too old"
    claimed = claims.get("payload_hash")
    if not isinstance(claimed, str) or not claimed:
        return "no payload_hash claim"
    if not any(hmac.compare_digest(claimed.lower(), digest) for digest in payload_hashes(request)):
        return "payload_hash does not match the request"
    app = claims.get("application_id")
    if application_id and app is not None and app != application_id:
        return "token of another application"
    return None


def webhook_fields(request: WebhookRequest) -> dict[str, str]:
    """Where the answer webhook carries the call: the query of a GET, the JSON body of a POST (the query of a
    POST without one). Only string values are kept."""
    if request.method.upper() == "POST" and request.body:
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            return {str(k): v for k, v in body.items() if isinstance(v, str)}
        return dict(request.form.items()) if request.form else {}
    return dict(request.query.items())


def call_uuid_valid(value: str | None) -> bool:
    """A Vonage call `uuid` (a UUID)."""
    return value is not None and UUID.match(value) is not None


def inbound_call(fields: Mapping[str, str], call_uuid: str) -> InboundCall:
    """The call the answer webhook describes (numbers as Vonage sends them: without a `+`)."""
    extra = {}
    conversation = fields.get("conversation_uuid")
    if conversation and CONVERSATION_UUID.match(conversation):
        extra["conversation_uuid"] = conversation
    region = fields.get("region_url")
    if region and REGION_URL.match(region):
        extra["region_url"] = region
    return InboundCall(call_id=call_uuid, account_id=None, from_number=fields.get("from") or None,
                       to_number=fields.get("to") or None, direction="inbound", extra=extra)
