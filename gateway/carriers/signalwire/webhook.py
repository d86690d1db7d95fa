"""SignalWire's webhook side: the checks on what SignalWire sends us (signatures and ids).

Pure functions, no I/O. The cXML we answer with is TwiML, written by the Twilio package's builders
(`carriers.twilio.webhook`): SignalWire documents cXML as compatible with TwiML, `<Connect><Stream>`
with `<Parameter>` included.

Signatures (SignalWire's "Webhook security" guide and its SDKs' validators):
- the header is `X-SignalWire-Signature`; SignalWire's own validators also accept `X-Twilio-Signature`
  as an alias for Compatibility callbacks, so it is read when the first is absent. Whether SignalWire
  sends both on a cXML webhook is not documented.
- cXML (form-encoded) webhooks: Twilio's scheme, base64 HMAC-SHA1 over the URL followed by the POST
  fields sorted by name, keyed by the project's Signing Key (checked with the twilio package's
  `RequestValidator`, which also tries the URL with and without its port).
- SignalWire's JSON webhooks (RELAY, SWML) are signed as hex HMAC-SHA1 over the URL followed by the
  raw body; SignalWire's validators try that form first and Twilio's second. It is accepted here too,
  with the same key: either proves the request was made with the Signing Key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from twilio.request_validator import RequestValidator

from gateway.carriers.signalwire.settings import UUID
from gateway.carriers.twilio.webhook import header
from gateway.env import Secret

SIGNATURE_HEADER = "X-SignalWire-Signature"
COMPAT_SIGNATURE_HEADER = "X-Twilio-Signature"  # the alias SignalWire's validators accept


def signature_of(headers: Mapping[str, str]) -> str | None:
    """The request's signature: X-SignalWire-Signature, else its X-Twilio-Signature alias."""
    return header(headers, SIGNATURE_HEADER) or header(headers, COMPAT_SIGNATURE_HEADER)


def signature_valid(signing_key: Secret | None, url: str, form: Mapping[str, str], body: bytes,
                    headers: Mapping[str, str]) -> bool:
    """The webhook's signature matches `url` (the public URL SignalWire called, query included) and the
    POST form fields (empty for a GET), or `url` and the raw body. True when no key is configured."""
    if not signing_key:
        return True
    signature = signature_of(headers)
    if not signature:
        return False
    key = signing_key.reveal()
    if RequestValidator(key).validate(url, form, signature):
        return True
    raw = hmac.new(key.encode(), url.encode() + body, hashlib.sha1).hexdigest()
    return hmac.compare_digest(raw.encode(), signature.strip().lower().encode())


def call_sid_valid(sid: str | None) -> bool:
    """A SignalWire CallSid: a UUID (Compatibility API: `Sid: uuid`; media stream `start.callSid`)."""
    return sid is not None and UUID.match(sid) is not None


def account_sid_valid(sid: str | None) -> bool:
    """A SignalWire AccountSid, which is the Project ID: a UUID."""
    return sid is not None and UUID.match(sid) is not None
