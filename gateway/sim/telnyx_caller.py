"""A simulated Telnyx caller: the TeXML webhook, then a bidirectional RTP media stream, byte-exact.

It speaks Telnyx's protocol (the sources are listed in `gateway.carriers.telnyx`): a form POST of the
TeXML instruction fetch to ``/voice/telnyx`` (AccountSid a UUID, CallSid a ``v3:`` Call Control id,
CallSidLegacy, From, To, ConnectionId, ApiVersion, CallStatus, Direction), signed with Ed25519 over
``<telnyx-timestamp>|<body>`` when given a private key (``telnyx-signature-ed25519``, ``telnyx-timestamp``),
or a GET with the same fields in the query; the TeXML ``<Connect><Stream>`` (its attributes checked, the
parameters from its ``<Parameter>`` children); no handshake signature; ``connected`` {version}, ``start``
{sequence_number (a string), stream_id, start: {user_id, call_control_id, call_session_id, from, to,
custom_parameters, media_format: {encoding, sample_rate, channels}}}, then 20 ms ``media`` frames paced on the
loop clock {sequence_number, stream_id, media: {track, chunk, timestamp, payload}}, ``dtmf`` on request,
and ``stop`` {stop: {user_id, call_control_id}} to hang up.

Playback follows Telnyx's model, on the same sans-I/O queue as Twilio's (:class:`TwilioPlayback`): ``media``
payloads are queued and played in real time, a ``mark`` is sent back once the media before it has played
(at once when nothing is queued), and ``clear`` drops the queued media and sends back every queued mark
(the report lists those in ``marks_flushed``), which is Telnyx's documented behaviour, unlike Plivo's.

Codec: ``PCMU`` (μ-law) or ``PCMA`` (A-law), both ways, as the TeXML must ask for it. The script's
utterances are μ-law, like every simulated caller's; with PCMA each frame is converted to A-law as it is
sent (so ``sent_payloads`` holds what really went over the wire), and the gateway's A-law audio is
converted back to μ-law for the playback model and the report (``heard``).

The turn logic, the pacing and the report are the Twilio caller's (:class:`SimulatedCaller`), reused by
subclassing; only what goes over the wire differs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import time
import uuid
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from gateway.carriers.telnyx.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER
from gateway.sim.audio import ALAW_FORMAT, ULAW_FORMAT, convert
from gateway.sim.caller import CallRefused, CarrierDialect, SimulatedCaller

TELNYX = CarrierDialect(SIGNATURE_HEADER, uuid_ids=True, signs_handshake=False, stream_sid_on_every_frame=True,
                        version="1.0.0")
CODECS = ("PCMU", "PCMA")
MIN_CHUNK_MS = 20  # TX-A: RTP media sent back "can contain 20 milliseconds to 30 seconds of audio"


def call_control_id() -> str:
    """A Call Control id shaped like Telnyx's: ``v3:`` and 54 URL-safe base64 characters."""
    return "v3:" + secrets.token_urlsafe(40)


def telnyx_private_key(text: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from its base64 raw form (32 bytes), as `new_telnyx_key_pair` prints it."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except ValueError:
        raise ValueError("not base64") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 private key is 32 bytes, this is {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def new_telnyx_key_pair() -> tuple[str, str]:
    """(private, public), base64: a key pair to sign simulated Telnyx webhooks with and verify them by."""
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode(), public_key_of(key)


def public_key_of(private_key: Ed25519PrivateKey) -> str:
    """The base64 public key the gateway verifies this caller's webhooks with (TELNYX_PUBLIC_KEY)."""
    return base64.b64encode(private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def sign(private_key: Ed25519PrivateKey, timestamp: str, body: bytes) -> str:
    """The ``telnyx-signature-ed25519`` of a webhook: base64 Ed25519 over ``<timestamp>|<body>``."""
    return base64.b64encode(private_key.sign(timestamp.encode() + b"|" + body)).decode()


class TelnyxCaller(SimulatedCaller):
    """A Telnyx caller; same `run`, `connect`, `speak`, `send_raw` and report as the Twilio one.

    ``private_key`` signs the webhook (the gateway holds its public key in TELNYX_PUBLIC_KEY);
    ``signed_at_offset_s`` moves the signature's timestamp from now (a stale or future webhook);
    ``method`` is the TeXML application's voice method (POST, or GET: the fields in the query)."""

    def __init__(self, gateway_url: str, *, private_key: Ed25519PrivateKey | None = None, codec: str | None = None,
                 from_: str = "+15005550006", to: str = "+15005550001", call_sid: str | None = None,
                 media_url: str | None = None, connect_timeout_s: float = 10.0, webhook_path: str | None = None,
                 method: str = "POST", signed_at_offset_s: float = 0.0) -> None:
        if codec is not None and codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)} (got {codec!r})")
        if method not in ("POST", "GET"):
            raise ValueError(f"method must be POST or GET (got {method!r})")
        super().__init__(gateway_url, from_=from_, to=to, call_sid=call_sid or "-", media_url=media_url,
                         connect_timeout_s=connect_timeout_s, webhook_path=webhook_path or "/voice/telnyx")
        self.carrier, self.dialect = "telnyx", TELNYX
        self.private_key = private_key
        # `codec` None: the codec the TeXML answer names, as Telnyx does; else the one the caller insists on
        self.expected_codec = codec
        self.codec, self.method, self.signed_at_offset_s = codec or "PCMU", method, signed_at_offset_s
        self._wire = ALAW_FORMAT if self.codec == "PCMA" else ULAW_FORMAT
        self.call_sid = call_sid or call_control_id()
        self.account_sid = str(uuid.uuid4())  # the AccountSid of the webhook, user_id of the stream
        self.stream_sid = str(uuid.uuid4()).upper()  # stream_id, as TX-A's example writes it
        self.call_session_id = str(uuid.uuid1())
        self.connection_id = str(secrets.randbelow(9 * 10**18) + 10**18)
        self.report.call_sid, self.report.stream_sid = self.call_sid, self.stream_sid
        self.sent_payloads: list[str] = []  # the base64 payload of every media frame sent, in order
        self.short_chunks: list[float] = []  # ms of each media chunk from the gateway under Telnyx's 20 ms

    # ------------------------------------------------------------------ webhook
    def webhook_form(self) -> dict[str, str]:
        """The instruction fetch's fields, as Telnyx sends them for an inbound call (TX-F)."""
        return {"AccountSid": self.account_sid, "CallSid": self.call_sid, "CallSidLegacy": self.call_sid,
                "From": self.from_, "To": self.to, "ConnectionId": self.connection_id, "ApiVersion": "2010-04-01",
                "CallStatus": "ringing", "Direction": "inbound"}

    async def webhook(self) -> tuple[int, str]:
        """POST (or GET) the voice URL like Telnyx, Ed25519-signed when a private key is given."""
        url = f"{self.gateway_url}{self.webhook_path}"
        query = urlencode(self.webhook_form())
        body = query.encode() if self.method == "POST" else b""
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if self.method == "POST" else {}
        if self.private_key is not None:
            timestamp = str(int(time.time() + self.signed_at_offset_s))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self.private_key, timestamp, body)
        target = url if self.method == "POST" else f"{url}?{query}"
        return await self._request_webhook(self.method, target, data=body or None, headers=headers)

    def _parse_twiml(self, body: str) -> tuple[str, dict[str, str]]:
        """The `<Stream>`'s URL and parameters, with the attributes the gateway relies on checked."""
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            raise CallRefused(f"answer is not valid XML: {exc}") from None
        stream = root.find("./Connect/Stream") if root.tag == "Response" else None
        if stream is None or not stream.get("url"):
            raise CallRefused("TeXML has no <Response><Connect><Stream url=...>")
        if self.expected_codec is None:  # like Telnyx: stream in the codec the answer names
            named = stream.get("codec", "")
            self.codec = named if named in CODECS else "PCMU"
            self._wire = ALAW_FORMAT if self.codec == "PCMA" else ULAW_FORMAT
        for name, expected in (("bidirectionalMode", "rtp"), ("bidirectionalCodec", self.codec),
                               ("codec", self.codec)):
            if stream.get(name) != expected:
                self._error(f"Stream {name}={stream.get(name)!r}, expected {expected!r}")
        if stream.get("track", "inbound_track") != "inbound_track":
            self._error(f"Stream track={stream.get('track')!r}, expected inbound_track")
        if stream.get("bidirectionalSamplingRate", "8000") != "8000":
            self._error(f"Stream bidirectionalSamplingRate={stream.get('bidirectionalSamplingRate')!r}")
        params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        url = stream.get("url", "")
        self._check_wss(url, "Stream url")
        return url, params

    # --------------------------------------------------------------- the stream
    async def connect(self) -> None:
        """Webhook, WebSocket, ``connected`` + ``start``. Raises CallRefused, or aiohttp/OS errors."""
        body = await self._answer()
        self.stream_url, params = self._parse_twiml(body)
        self.report.stream_parameters = params
        await self._open_stream()
        await self._send({"event": "connected", "version": self.dialect.version}, seq=False)
        self._t0 = asyncio.get_running_loop().time()
        start = {"user_id": self.account_sid, "call_control_id": self.call_sid,
                 "call_session_id": self.call_session_id, "from": self.from_, "to": self.to, "tags": [],
                 "custom_parameters": self._stream_parameters(params),
                 "media_format": {"encoding": self.codec, "sample_rate": 8000, "channels": 1}}
        await self._send({"event": "start", "start": start, **self._sid_field()})
        self._started()

    def _sid_field(self) -> dict[str, str]:
        return {"stream_id": self.stream_sid}

    async def _send(self, *msgs: dict[str, Any], seq: bool = True) -> None:
        """Send in order with string sequence numbers; `media` frames go out in the stream's codec."""
        async with self._send_lock:
            for msg in msgs:
                if seq:
                    self._seq += 1
                    msg = {"event": msg["event"], "sequence_number": str(self._seq), **msg}
                if msg["event"] == "media":
                    media = msg["media"]
                    payload = media["payload"]
                    if self._wire is ALAW_FORMAT:
                        payload = base64.b64encode(convert(base64.b64decode(payload), ULAW_FORMAT, ALAW_FORMAT))
                        payload = payload.decode("ascii")
                    media = {"track": "inbound", "chunk": str(media["chunk"]), "timestamp": str(media["timestamp"]),
                             "payload": payload}
                    msg = {**msg, "media": media}
                    self.sent_payloads.append(payload)
                if self._ws is None or self._ws.closed:
                    return
                try:
                    await self._ws.send_str(orjson.dumps(msg).decode())
                except ConnectionError:
                    return

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        """A key the caller pressed: Telnyx's ``dtmf`` frame."""
        return {"event": "dtmf", **self._sid_field(), "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "dtmf": {"digit": digit}}

    def _stop_message(self) -> dict[str, Any] | None:
        """Hang up: Telnyx sends ``stop``."""
        return {"event": "stop", **self._sid_field(),
                "stop": {"user_id": self.account_sid, "call_control_id": self.call_sid}}

    def _mark_message(self, name: str) -> dict[str, Any]:
        """A played mark, and at a clear every queued one (Telnyx returns them too)."""
        return {"event": "mark", **self._sid_field(), "mark": {"name": name}}

    async def _on_text(self, text: str) -> None:
        try:
            msg = orjson.loads(text)
            event = msg["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._error(f"malformed message from the gateway: {text[:120]!r}")
            return
        self.received.append(msg)
        if "stream_id" in msg and msg["stream_id"] != self.stream_sid:
            self._error(f"{event} with stream_id {msg.get('stream_id')!r}, expected {self.stream_sid}")
            return
        now = self._now()
        if event == "media":
            media = msg.get("media") if isinstance(msg.get("media"), dict) else {}
            try:
                audio = base64.b64decode(media["payload"], validate=True)
            except (KeyError, TypeError, binascii.Error):
                self._error("media message without a valid base64 media.payload")
                return
            if len(audio) < MIN_CHUNK_MS * 8:  # played anyway; the report says how often
                self.short_chunks.append(len(audio) / 8.0)
                self._event("short_media_chunk", ms=len(audio) / 8.0)
            audio = convert(audio, self._wire, ULAW_FORMAT)
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
        elif event == "mark":
            name = (msg.get("mark") or {}).get("name") if isinstance(msg.get("mark"), dict) else None
            if not isinstance(name, str):
                self._error("mark message without mark.name")
                return
            await self._mark_arrived(name, now)
        elif event == "clear":
            await self._clear_arrived(now)
        else:
            self._error(f"unknown event {event!r} from the gateway (Telnyx takes media, mark and clear)")
