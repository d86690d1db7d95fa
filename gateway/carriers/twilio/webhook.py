"""Twilio's webhook side: the TwiML we answer with, and the checks on what Twilio sends us.

Pure functions, no I/O. TwiML is written with the twilio package (it escapes every value);
signatures are checked with its `RequestValidator` (protocol-reference.md §4.7, and §4.2 for the
media WebSocket handshake), with the algorithm named in the signature-settings header (HMAC-SHA1
when it is absent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

from gateway.carriers.base import CALL_STATUSES, CallProgress, Fallback, InboundCall, WebhookRefused, WebhookRequest
from gateway.env import Secret

PARAMETER_MAX_CHARS = 200  # per <Parameter> value; Twilio caps name + value at 500 characters
PARAMETER_PAIR_MAX_CHARS = 500
CALL_SID_MAX_CHARS = 64
PHONE_NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$")  # E.164
SIP_URI = re.compile(r"^sip:\S+$", re.IGNORECASE)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, case-insensitively also when `headers` is a plain dict."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


# --- TwiML -----------------------------------------------------------------------------------------


def answer_twiml(stream_url: str, parameters: Mapping[str, str]) -> str:
    """`<Connect><Stream>` to `stream_url` (wss, no query string: §4.1), each parameter a `<Parameter>`
    that comes back in the stream's `start.customParameters`. Values are cut to 200 characters,
    except the stream token, which must arrive whole."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value if name == "token" else value[:PARAMETER_MAX_CHARS])
    response.append(connect)
    return str(response)


def connect_twiml(stream_url: str, parameters: Mapping[str, str]) -> str:
    """`<Connect><Stream>` for a call the gateway places: every parameter whole (the stream token signs
    some of them), so each name and value must stay under Twilio's 500 characters: ValueError otherwise."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    for name, value in parameters.items():
        if len(name) + len(value) >= PARAMETER_PAIR_MAX_CHARS:
            raise ValueError(f"the stream parameter {name} is too long for Twilio (name and value under "
                             f"{PARAMETER_PAIR_MAX_CHARS} characters)")
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response)


def busy_twiml(message: str) -> str:
    """Say `message` and hang up."""
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response)


def fallback_twiml(fallback: Fallback) -> str:
    """Dial the fallback number when one is set; otherwise say the apology and hang up."""
    response = VoiceResponse()
    if fallback.number:
        response.dial(fallback.number)
    else:
        response.say(fallback.message)
        response.hangup()
    return str(response)


def hangup_twiml() -> str:
    """End the call."""
    response = VoiceResponse()
    response.hangup()
    return str(response)


def transfer_twiml(target: str) -> str:
    """Dial `target`: an E.164 number (`<Dial><Number>`) or a SIP URI (`<Dial><Sip>`). Raises
    ValueError for anything else, which Twilio would not dial."""
    dial = Dial()
    if PHONE_NUMBER.match(target):
        dial.number(target)
    elif SIP_URI.match(target):
        dial.sip(target)
    else:
        raise ValueError("the transfer target is neither an E.164 number nor a sip: URI")
    response = VoiceResponse()
    response.append(dial)
    return str(response)


# --- checks ----------------------------------------------------------------------------------------


def signature_valid(auth_token: Secret | None, url: str, form: Mapping[str, str],
                    headers: Mapping[str, str]) -> bool:
    """The webhook's X-Twilio-Signature matches `url` (the public URL Twilio called, query included)
    and the POST form fields (empty for a GET). True when no auth token is configured."""
    if not auth_token:
        return True
    signature = header(headers, SIGNATURE_HEADER)
    if not signature:
        return False
    algorithm = get_signature_algorithm(header(headers, SIGNATURE_SETTINGS_HEADER))
    return bool(RequestValidator(auth_token.reveal()).validate(url, form, signature, algorithm))


def handshake_signature_valid(auth_token: Secret | None, stream_url: str, headers: Mapping[str, str]) -> bool:
    """The media WebSocket handshake, where Twilio signs it: over the stream URL as written in the TwiML
    (wss scheme) or with a trailing slash, with no params (§4.2). A handshake without the header
    passes: the single-use stream token in `start` is the gate that always applies."""
    signature = header(headers, SIGNATURE_HEADER)
    if not auth_token or signature is None:
        return True
    validator = RequestValidator(auth_token.reveal())
    algorithm = get_signature_algorithm(header(headers, SIGNATURE_SETTINGS_HEADER))
    candidates = (stream_url, stream_url.rstrip("/") if stream_url.endswith("/") else stream_url + "/")
    return any(validator.validate(candidate, {}, signature, algorithm) for candidate in candidates)


def call_sid_valid(sid: str | None) -> bool:
    """A webhook's CallSid as the gateway accepts it: CA..., at most 64 characters."""
    return sid is not None and sid.startswith("CA") and len(sid) <= CALL_SID_MAX_CHARS


def webhook_fields(request: WebhookRequest) -> Mapping[str, str]:
    """Where a TwiML-family webhook (Twilio, SignalWire) carries the call: the form of a POST, the query
    of a GET (protocol-reference.md §4.6)."""
    method = request.method.upper()
    return request.form if method == "POST" else request.query if method == "GET" else {}


def inbound_call(fields: Mapping[str, str], call_sid: str, account_sid: str | None) -> InboundCall:
    """The call a TwiML-family webhook describes, once its ids are checked by the carrier."""
    return InboundCall(call_id=call_sid, account_id=account_sid, from_number=fields.get("From") or None,
                       to_number=fields.get("To") or None, direction=fields.get("Direction") or None)


# AnsweredBy of answering-machine detection (the values of Twilio's AMD page and of the twilio package's
# enums): a human, a machine (its greeting's start, its end by beep, silence or otherwise), a fax, or unknown.
ANSWERED_BY = {"human": "human", "machine_start": "machine", "machine_end_beep": "machine",
               "machine_end_silence": "machine", "machine_end_other": "machine", "fax": "machine",
               "unknown": "unknown"}


def call_progress(fields: Mapping[str, str]) -> CallProgress:
    """A call's status callback (CallStatus, CallDuration, SequenceNumber) or its asynchronous AMD callback
    (AnsweredBy), from a TwiML-family carrier (protocol-reference.md §4.8). Raises WebhookRefused when the
    CallSid is missing or the fields are not Twilio's."""
    call_sid = fields.get("CallSid") or ""
    if not call_sid or len(call_sid) > CALL_SID_MAX_CHARS:
        raise WebhookRefused("bad_request", "CallSid is missing or malformed")
    status = fields.get("CallStatus") or None
    if status is not None and status not in CALL_STATUSES:
        raise WebhookRefused("bad_request", "CallStatus is not one of " + ", ".join(CALL_STATUSES))
    raw = fields.get("AnsweredBy") or None
    answered_by = ANSWERED_BY.get(raw, "unknown") if raw else None
    return CallProgress(call_id=call_sid, status=status, duration_s=_count(fields.get("CallDuration")),
                        answered_by=answered_by, answered_by_detail=raw[:40] if raw else None,
                        sequence=_count(fields.get("SequenceNumber")))


def _count(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 else None
