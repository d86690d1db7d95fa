"""Telnyx's webhook side: the TeXML we answer with, and the checks on what Telnyx sends us.

Pure functions, no I/O (the clock is passed in).

The answer is TeXML written with the standard library's ElementTree (it escapes every value), one
`<Connect><Stream>` (TX-S, TX-R): inside `<Connect>` the stream holds the call until it stops, which is
what a bidirectional agent needs (`<Start><Stream>` would stream in the background while the document
runs on and ends). Its attributes:

- `url`: the gateway's media WebSocket;
- `track="inbound_track"`: the caller's audio only (TX-S default, written out);
- `codec`: the codec of the audio Telnyx streams to us, PCMU or PCMA (TX-S: "transcoding is only
  supported between PCMU and PCMA"), so what the Realtime session hears is exactly what the caller said;
- `bidirectionalMode="rtp"`: Telnyx then takes base64 RTP payloads back in `media` frames (the default,
  mp3, takes whole MP3 files, one a second; TX-S, TX-A);
- `bidirectionalCodec`: the codec of the audio we send back, the same as `codec`, and
  `bidirectionalSamplingRate="8000"`.

The stream's parameters (the single-use stream token, the caller's numbers) are `<Parameter name value>`
children: TX-S documents them ("Parameters are included in the start message sent over the WebSocket
connection") and TX-A shows where they arrive: `start.custom_parameters`.

Signatures (TX-W, TX-K): `telnyx-signature-ed25519` is the base64 Ed25519 signature, by the account's key,
of `<telnyx-timestamp>|<raw body>`, where `telnyx-timestamp` is Unix seconds; the receiver sets the replay
window (Telnyx's SDKs take 5 minutes either way). The body is all that is signed: a GET webhook (TeXML's
default method, TX-F) carries its fields in the query, which no signature covers, so `carrier` refuses GET
webhooks while signatures are checked.

Ids (TX-F, TX-W): `CallSid` is the call's Call Control id, `v3:` (or the older `v2:`) and a URL-safe
base64 string, the same id the stream's `start.call_control_id` carries and the TeXML REST API takes;
`AccountSid` is the account's id, a UUID (the stream's `start.user_id`).
"""

from __future__ import annotations

import base64
import binascii
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.carriers.base import Fallback, InboundCall, WebhookRequest
from gateway.core.codec import Codec

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
PARAMETER_MAX_CHARS = 200  # per <Parameter> value other than the stream token, which must arrive whole
CALL_CONTROL_ID = re.compile(r"^v[23]:[A-Za-z0-9_-]{16,256}$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
PHONE_NUMBER = re.compile(r"^\+[1-9][0-9]{6,14}$")  # E.164
SIP_URI = re.compile(r"^sips?:[^\s<>\"]+$", re.IGNORECASE)
TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, case-insensitively also when `headers` is a plain dict."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


# --- TeXML -----------------------------------------------------------------------------------------


def _document(root: ET.Element) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(root, encoding="unicode")


def texml_codec(codec: Codec) -> str:
    """TeXML's name of a G.711 codec (TX-S): PCMU or PCMA."""
    if codec.name not in ("pcmu", "pcma"):
        raise ValueError(f"Telnyx streams carry PCMU or PCMA here, not {codec.name}")
    return codec.name.upper()


def answer_texml(stream_url: str, parameters: Mapping[str, str], codec: Codec) -> str:
    """`<Response><Connect><Stream ...>` with each parameter a `<Parameter>`: a bidirectional RTP stream in
    `codec` both ways that holds the call (see the module's docstring)."""
    name = texml_codec(codec)
    response = ET.Element("Response")
    connect = ET.SubElement(response, "Connect")
    stream = ET.SubElement(connect, "Stream", {
        "url": stream_url,
        "track": "inbound_track",
        "codec": name,
        "bidirectionalMode": "rtp",
        "bidirectionalCodec": name,
        "bidirectionalSamplingRate": "8000",
    })
    for key, value in parameters.items():
        ET.SubElement(stream, "Parameter", {"name": key,
                                            "value": value if key == "token" else value[:PARAMETER_MAX_CHARS]})
    return _document(response)


def busy_texml(message: str) -> str:
    """Say `message` and hang up."""
    response = ET.Element("Response")
    ET.SubElement(response, "Say").text = message
    ET.SubElement(response, "Hangup")
    return _document(response)


def hangup_texml() -> str:
    """End the call."""
    response = ET.Element("Response")
    ET.SubElement(response, "Hangup")
    return _document(response)


def _dial(target: str) -> ET.Element:
    """`<Dial><Number>` for an E.164 number, `<Dial><Sip>` for a SIP URI; ValueError for anything else."""
    dial = ET.Element("Dial")
    if PHONE_NUMBER.match(target):
        ET.SubElement(dial, "Number").text = target
    elif SIP_URI.match(target):
        ET.SubElement(dial, "Sip").text = target
    else:
        raise ValueError("the transfer target is neither an E.164 number nor a sip: URI")
    return dial


def fallback_texml(fallback: Fallback) -> str:
    """Dial the fallback number when one is set; otherwise say the apology and hang up."""
    response = ET.Element("Response")
    if fallback.number:
        response.append(_dial(fallback.number))
    else:
        ET.SubElement(response, "Say").text = fallback.message
        ET.SubElement(response, "Hangup")
    return _document(response)


def transfer_texml(target: str) -> str:
    """Dial `target`: an E.164 number or a SIP URI. ValueError for anything else, before any request."""
    response = ET.Element("Response")
    response.append(_dial(target))
    return _document(response)


# --- checks ----------------------------------------------------------------------------------------


def signature_valid(verify_key: Ed25519PublicKey | None, request: WebhookRequest, now: float,
                    max_age_s: float) -> bool:
    """The webhook's `telnyx-signature-ed25519` verifies over `<telnyx-timestamp>|<body>` with the account's
    public key, and the timestamp is within `max_age_s` of `now` (Unix seconds) either way. True when no
    public key is configured; False when a header is missing or malformed."""
    if verify_key is None:
        return True
    signature = header(request.headers, SIGNATURE_HEADER)
    timestamp = header(request.headers, TIMESTAMP_HEADER)
    if not signature or not timestamp or not TIMESTAMP.match(timestamp):
        return False
    if abs(now - int(timestamp)) > max_age_s:
        return False
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except binascii.Error:
        return False
    if len(raw) != 64:
        return False
    try:
        verify_key.verify(raw, timestamp.encode() + b"|" + request.body)
    except InvalidSignature:
        return False
    return True


def call_control_id_valid(value: str | None) -> bool:
    """A Telnyx Call Control id (`CallSid` of the webhook, `start.call_control_id` of the stream)."""
    return value is not None and CALL_CONTROL_ID.match(value) is not None


def account_id_valid(value: str | None) -> bool:
    """A Telnyx account id (`AccountSid` of the webhook, `start.user_id` of the stream): a UUID."""
    return value is not None and UUID.match(value) is not None


def webhook_fields(request: WebhookRequest) -> Mapping[str, str]:
    """Where TeXML carries the call (TX-F): the form of a POST, the query of a GET."""
    method = request.method.upper()
    return request.form if method == "POST" else request.query if method == "GET" else {}


def inbound_call(fields: Mapping[str, str], call_id: str, account_id: str) -> InboundCall:
    """The call the webhook describes, once its ids are checked by the carrier."""
    extra = {name: fields[name][:64] for name in ("CallStatus", "ConnectionId", "CallerName") if fields.get(name)}
    return InboundCall(call_id=call_id, account_id=account_id, from_number=fields.get("From") or None,
                       to_number=fields.get("To") or None, direction=fields.get("Direction") or None, extra=extra)
