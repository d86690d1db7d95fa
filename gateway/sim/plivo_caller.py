"""A simulated Plivo caller: the answer-URL webhook, then a bidirectional Audio Stream, byte-exact.

It speaks Plivo's protocol: a form POST to ``/voice/plivo`` (CallUUID, From, To without ``+``, ...),
signed with ``X-Plivo-Signature-V3`` and its nonce when an Auth Token is given; the ``<Stream>`` XML
(the WebSocket URL is the element's text, the parameters come from ``extraHeaders``); no handshake
signature and no ``connected`` message: ``start`` {sequenceNumber, start: {callId, streamId, accountId,
tracks, mediaFormat}, extra_headers}, then 20 ms ``media`` frames paced on the loop clock (numeric
``sequenceNumber`` and ``chunk``, ``timestamp`` in Unix ms). Hanging up closes the socket: Plivo sends
no ``stop``.

Playback follows Plivo's model, on the same sans-I/O queue as Twilio's (:class:`TwilioPlayback`):
``playAudio`` is queued and played in real time, a ``checkpoint`` is answered with ``playedStream`` once
the audio queued before it has played, and ``clearAudio`` drops the queued audio and is answered with
``clearedAudio``, while the checkpoints still pending are dropped without an answer (the report lists
them in ``marks_flushed``). A ``sendDTMF`` {dtmf} from the gateway (the send_dtmf tool) is recorded in the
report's ``keys_received``; the caller presses keys with a ``dtmf`` {dtmf: {digit}} event (``send_dtmf``).

The turn logic, the pacing and the report are the Twilio caller's (:class:`SimulatedCaller`), reused
by subclassing; only what goes over the wire differs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import string
import time
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import orjson

from gateway.carriers.plivo.webhook import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    decode_extra_headers,
    encode_extra_headers,
    signature_of,
)
from gateway.sim.caller import CallRefused, CarrierDialect, SimulatedCaller

PLIVO = CarrierDialect(SIGNATURE_HEADER, uuid_ids=True, signs_handshake=False, stream_sid_on_every_frame=True,
                       version="")
ULAW = "audio/x-mulaw"


def auth_id() -> str:
    """An account id shaped like Plivo's (MA + 18 upper-case letters and digits)."""
    alphabet = string.ascii_uppercase + string.digits
    return "MA" + "".join(secrets.choice(alphabet) for _ in range(18))


class PlivoCaller(SimulatedCaller):
    """A Plivo caller; same constructor, `run`, `connect`, `speak`, `send_raw` and report as the Twilio one."""

    def __init__(self, gateway_url: str, *, auth_token: str | None = None, from_: str = "+15005550006",
                 to: str = "+15005550001", call_sid: str | None = None, media_url: str | None = None,
                 connect_timeout_s: float = 10.0, webhook_path: str | None = None) -> None:
        super().__init__(gateway_url, auth_token=auth_token, from_=from_, to=to, call_sid=call_sid or "-",
                         media_url=media_url, connect_timeout_s=connect_timeout_s,
                         webhook_path=webhook_path or "/voice/plivo")
        self.carrier, self.dialect = "plivo", PLIVO
        self.call_sid = call_sid or str(uuid.uuid4())  # Plivo's CallUUID
        self.account_sid = auth_id()
        self.stream_sid = str(uuid.uuid4())  # Plivo's streamId
        self.report.call_sid, self.report.stream_sid = self.call_sid, self.stream_sid
        self.extra_headers = ""  # as written in the XML, sent back verbatim in start
        self.checkpoints_dropped: list[str] = []
        self.sent_payloads: list[str] = []  # the base64 payload of every media frame sent, in order
        self._epoch_ms = 0  # Unix ms of the stream start, for media timestamps

    # ------------------------------------------------------------------ webhook
    def webhook_form(self) -> dict[str, str]:
        """The answer URL's form fields, as Plivo posts them for an inbound call."""
        return {"CallUUID": self.call_sid, "From": self.from_.lstrip("+"), "To": self.to.lstrip("+"),
                "CallStatus": "ringing", "Direction": "inbound", "Event": "StartApp",
                "CallerName": self.from_.lstrip("+"), "RequestUUID": self.call_sid}

    async def webhook(self) -> tuple[int, str]:
        """POST the answer URL like Plivo (form-encoded, V3-signed when an Auth Token is set)."""
        url = f"{self.gateway_url}{self.webhook_path}"
        fields = self.webhook_form()
        headers = {}
        if self.auth_token:
            nonce = secrets.token_hex(10)
            headers[SIGNATURE_HEADER] = signature_of(self.auth_token, "POST", url, fields, nonce)
            headers[NONCE_HEADER] = nonce
        return await self._post_webhook(url, fields, headers)

    def _parse_twiml(self, body: str) -> tuple[str, dict[str, str]]:
        """The `<Stream>`'s URL and parameters, with the attributes the gateway relies on checked."""
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            raise CallRefused(f"answer is not valid XML: {exc}") from None
        stream = root.find("./Stream") if root.tag == "Response" else None
        url = (stream.text or "").strip() if stream is not None else ""
        if stream is None or not url:
            raise CallRefused("Plivo XML has no <Response><Stream>wss://...</Stream>")
        for name, expected in (("bidirectional", "true"), ("keepCallAlive", "true"),
                               ("contentType", ULAW + ";rate=8000")):
            if stream.get(name) != expected:
                self._error(f"Stream {name}={stream.get(name)!r}, expected {expected!r}")
        self.extra_headers = stream.get("extraHeaders", "")
        if len(self.extra_headers) > 512:
            self._error("Stream extraHeaders over 512 bytes")
        self._check_wss(url, "Stream URL")
        return url, decode_extra_headers(self.extra_headers)

    # --------------------------------------------------------------- the stream
    async def connect(self) -> None:
        """Webhook, WebSocket, ``start``. Raises CallRefused, or aiohttp/OS errors."""
        body = await self._answer()
        self.stream_url, params = self._parse_twiml(body)
        self.report.stream_parameters = params
        await self._open_stream()
        self._t0 = asyncio.get_running_loop().time()
        self._epoch_ms = int(time.time() * 1000)
        start = {"callId": self.call_sid, "streamId": self.stream_sid, "accountId": self.account_sid,
                 "tracks": ["inbound"], "mediaFormat": {"encoding": ULAW, "sampleRate": 8000}}
        extra = self.extra_headers if self._token_override is None else encode_extra_headers(
            self._stream_parameters(params))
        await self._send({"event": "start", "start": start, "extra_headers": extra})
        self._started()

    def _sid_field(self) -> dict[str, str]:
        return {"streamId": self.stream_sid}

    async def _send(self, *msgs: dict[str, Any], seq: bool = True) -> None:
        """Send in order with numeric sequence numbers; `media` frames get Plivo's chunk and timestamp."""
        async with self._send_lock:
            for msg in msgs:
                if seq:
                    self._seq += 1
                    msg = {"event": msg["event"], "sequenceNumber": self._seq, **msg}
                if msg["event"] == "media":
                    media = msg["media"]
                    media = {"track": "inbound", "timestamp": str(self._epoch_ms + int(media["timestamp"])),
                             "chunk": int(media["chunk"]), "payload": media["payload"]}
                    msg = {**msg, "media": media}
                    self.sent_payloads.append(media["payload"])
                if self._ws is None or self._ws.closed:
                    return
                try:
                    await self._ws.send_str(orjson.dumps(msg).decode())
                except ConnectionError:
                    return

    def _stop_message(self) -> dict[str, Any] | None:
        """Plivo sends no stop: hanging up closes the socket."""
        return None

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        """A key the caller pressed: Plivo's `dtmf` event."""
        return {"event": "dtmf", "streamId": self.stream_sid, "dtmf": {"digit": digit}}

    async def _echo(self, names: list[str], flushed: bool = False) -> None:
        """Answer checkpoints whose audio has played; a dropped one is never answered."""
        if flushed:
            for name in names:
                self._event("mark_flushed", name=name)
            self.checkpoints_dropped += names
            return
        for name in names:
            self._event("mark_echoed", name=name)
        await self._send(*({"event": "playedStream", "streamId": self.stream_sid, "name": n} for n in names))

    async def _on_text(self, text: str) -> None:
        try:
            msg = orjson.loads(text)
            event = msg["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._error(f"malformed message from the gateway: {text[:120]!r}")
            return
        self.received.append(msg)
        now = self._now()
        if event == "playAudio":
            media = msg.get("media") if isinstance(msg.get("media"), dict) else {}
            if media.get("contentType") != ULAW or media.get("sampleRate") != 8000:
                self._error(f"playAudio with {media.get('contentType')!r}/{media.get('sampleRate')!r}, "
                            "expected audio/x-mulaw/8000")
                return
            try:
                audio = base64.b64decode(media["payload"], validate=True)
            except (KeyError, TypeError, binascii.Error):
                self._error("playAudio without a valid base64 media.payload")
                return
            was_playing = self.playback.is_playing(now)
            start = self.playback.enqueue_audio(audio, now)
            self.report.frames_received += 1
            self.report.media_ms_received += len(audio) / 8.0
            if not was_playing:
                self._event("agent_audio_start")
            if self._answer_starts and self._answer_starts[-1] is None and audio:
                ends = self._speech_ends
                if len(ends) == len(self._answer_starts) and now >= ends[-1]:
                    self._answer_starts[-1] = start
            return
        if event in ("checkpoint", "clearAudio") and msg.get("streamId") != self.stream_sid:
            self._error(f"{event} with streamId {msg.get('streamId')!r}, expected {self.stream_sid}")
            return
        if event == "checkpoint":
            name = msg.get("name")
            if not isinstance(name, str):
                self._error("checkpoint without a name")
                return
            await self._mark_arrived(name, now)
        elif event == "clearAudio":
            await self._clear_arrived(now)
            await self._send({"event": "clearedAudio", "streamId": self.stream_sid})
        elif event == "sendDTMF":  # keys played into the call: the caller (a phone menu, say) hears them
            keys = msg.get("dtmf")
            if not isinstance(keys, str) or not keys or any(k not in "0123456789*#ABCD" for k in keys):
                self._error(f"sendDTMF without keys in dtmf: {text[:120]!r}")
                return
            self.report.keys_received.append(keys)
            self._event("keys_received", keys=keys)
        else:
            self._event("gateway_event", event=event)
