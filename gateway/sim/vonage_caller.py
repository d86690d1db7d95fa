"""A simulated Vonage caller: the answer webhook, then the call's WebSocket, byte-exact.

It speaks Vonage's Voice API as its WebSockets guide and webhook reference describe it
(developer.vonage.com/en/voice/voice-api/concepts/websockets, .../webhook-reference): a GET to
``/voice/vonage`` with ``to``, ``from`` (numbers without ``+``), ``uuid``, ``conversation_uuid`` and
``region_url`` in the query (or a POST with them as a JSON body), signed when a signature secret is given with
a JWT in ``Authorization: Bearer`` (HS256; ``iat``, ``jti``, ``iss``, ``payload_hash`` over the query as a
compact JSON object, ``api_key``, ``application_id``); the NCCO's ``connect`` to a ``websocket`` endpoint; the
socket opened on its ``uri`` with no handshake authorization; a first text message ``websocket:connected`` with
the endpoint's ``content-type`` and its ``headers`` flattened at the top level; then binary frames of exactly
20 ms of 16-bit little-endian PCM at the NCCO's rate, paced on the loop clock. Hanging up closes the socket:
Vonage sends no stop message.

The caller's test audio is μ-law at 8 kHz (the other callers' script): each 20 ms frame is decoded to linear
PCM and, at 16 kHz, interpolated up to 320 samples (the previous frame's last sample carried over), so every
frame is exactly 320 or 640 bytes.

Playback follows Vonage's model on the shared sans-I/O queue (:class:`TwilioPlayback`, fed with what was
heard as 8 kHz μ-law, so the report reads like the other callers'): binary frames are queued and played in
real time; a frame that is not exactly 20 ms is rejected, never played, and counted (``frames_rejected``, and
an error); ``{"action": "notify", "payload": ...}`` is answered ``{"event": "websocket:notify", "payload":
...}`` once the audio queued before it has played; ``{"action": "clear"}`` drops the queued audio and is
answered ``{"event": "websocket:cleared"}``. Notifies still pending at a clear are dropped unanswered (listed
in ``notifies_dropped``): Vonage does not document them, and dropping is the strictest behaviour the gateway
must cope with.

The turn logic, the pacing and the report are the Twilio caller's (:class:`SimulatedCaller`), reused by
subclassing; only what goes over the wire differs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import numpy as np
import orjson
from jwt.warnings import InsecureKeyLengthWarning

from gateway.sim.audio import audioop
from gateway.sim.caller import CallRefused, CallReport, CarrierDialect, SimulatedCaller

VONAGE = CarrierDialect("Authorization", uuid_ids=True, signs_handshake=False, stream_sid_on_every_frame=False,
                        version="")
RATES = (8000, 16000)
REGION_URL = "https://api-us-3.vonage.com"


@dataclass
class VonageCallReport(CallReport):
    sample_rate: int = 0  # of the stream, from the NCCO's content-type
    ncco: list[Any] = field(default_factory=list)
    frames_rejected: int = 0  # binary frames from the gateway that were not exactly 20 ms
    notifies_dropped: list[Any] = field(default_factory=list)  # notify payloads pending at a clear


def signed_webhook_jwt(secret: str, payload: bytes, *, iat: float | None = None, application_id: str | None = None,
                       api_key: str = "a1b2c3d4") -> str:
    """A signed-webhook JWT as Vonage sends one: HS256 with the signature secret, over `payload`'s SHA-256."""
    claims: dict[str, Any] = {"iat": int(time.time() if iat is None else iat), "jti": str(uuid.uuid4()),
                              "iss": "Vonage", "payload_hash": hashlib.sha256(payload).hexdigest(),
                              "api_key": api_key}
    if application_id:
        claims["application_id"] = application_id
    with warnings.catch_warnings():  # the account picks the secret's length, not the caller
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm="HS256")


class VonageCaller(SimulatedCaller):
    """A Vonage caller; same `run`, `connect`, `speak`, `send_raw` and report as the Twilio one."""

    def __init__(self, gateway_url: str, *, auth_token: str | None = None, from_: str = "+15005550006",
                 to: str = "+15005550001", call_sid: str | None = None, media_url: str | None = None,
                 connect_timeout_s: float = 10.0, webhook_path: str | None = None, method: str = "GET",
                 application_id: str | None = None) -> None:
        super().__init__(gateway_url, auth_token=auth_token, from_=from_, to=to, call_sid=call_sid or "-",
                         media_url=media_url, connect_timeout_s=connect_timeout_s,
                         webhook_path=webhook_path or "/voice/vonage")
        if method not in ("GET", "POST"):
            raise ValueError("method must be GET or POST")
        self.carrier, self.dialect, self.method = "vonage", VONAGE, method
        self.application_id = application_id
        self.call_sid = call_sid or str(uuid.uuid4())  # the call's uuid
        self.conversation_uuid = "CON-" + str(uuid.uuid4())
        self.stream_sid = self.call_sid  # Vonage names no stream
        self.report = VonageCallReport(call_sid=self.call_sid, stream_sid=self.stream_sid)
        self.rate = 0  # from the NCCO
        self.headers: dict[str, Any] = {}  # the NCCO endpoint's headers, sent back flattened
        self.sent_frames: list[bytes] = []  # every binary frame sent, in order (L16 at `rate`)
        self.received_frames: list[bytes] = []  # every binary frame received and accepted, in order
        self._last_sample = 0.0  # of the previous frame sent, for the 8 → 16 kHz interpolation
        self._notify_payloads: dict[str, Any] = {}  # playback-model mark name -> the notify's payload
        self._notifies = 0
        self.report_v: VonageCallReport = self.report

    # ------------------------------------------------------------------ webhook
    def webhook_fields(self) -> dict[str, str]:
        """The answer webhook's fields, in Vonage's order (numbers without `+`)."""
        return {"to": self.to.lstrip("+"), "from": self.from_.lstrip("+"), "uuid": self.call_sid,
                "conversation_uuid": self.conversation_uuid, "region_url": REGION_URL}

    async def webhook(self) -> tuple[int, str]:
        """GET (or POST) the answer URL like Vonage, signed when a signature secret is set."""
        url = f"{self.gateway_url}{self.webhook_path}"
        fields = self.webhook_fields()
        body = orjson.dumps(fields)  # a GET's payload is its query as a compact JSON object; a POST's, its body
        headers = {}
        if self.auth_token:
            token = signed_webhook_jwt(self.auth_token, body, application_id=self.application_id)
            headers["Authorization"] = f"Bearer {token}"
        if self.method == "GET":
            return await self._request_webhook("GET", url, params=fields, headers=headers)
        return await self._request_webhook("POST", url, data=body,
                                           headers={**headers, "Content-Type": "application/json"})

    def _parse_ncco(self, body: str) -> tuple[str, dict[str, Any]]:
        """The websocket endpoint's URI and headers, with the rate and the shape the gateway relies on checked."""
        try:
            ncco = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise CallRefused("the answer is not JSON (an NCCO is a JSON array)") from None
        self.report_v.ncco = ncco if isinstance(ncco, list) else []
        connects = [a for a in self.report_v.ncco if isinstance(a, dict) and a.get("action") == "connect"]
        endpoints = [e for a in connects for e in (a.get("endpoint") or []) if isinstance(e, dict)]
        socket = next((e for e in endpoints if e.get("type") == "websocket"), None)
        if socket is None or not isinstance(socket.get("uri"), str):
            raise CallRefused("the NCCO has no connect action with a websocket endpoint")
        content_type = str(socket.get("content-type", ""))
        rate = content_type.replace(" ", "").lower().removeprefix("audio/l16;rate=")
        if not rate.isdigit() or int(rate) not in RATES:
            raise CallRefused(f"websocket content-type {content_type!r}: audio/l16;rate=8000 or 16000 expected")
        self.rate = self.report_v.sample_rate = int(rate)
        headers = socket.get("headers") or {}
        if not isinstance(headers, dict):
            raise CallRefused("the websocket endpoint's headers are not an object")
        if len(orjson.dumps(headers)) > 512:
            self._error("websocket headers over 512 bytes")
        url = socket["uri"]
        self._check_wss(url, "websocket uri")
        return url, headers

    # --------------------------------------------------------------- the stream
    async def connect(self) -> None:
        """Webhook, WebSocket, ``websocket:connected``. Raises CallRefused, or aiohttp/OS errors."""
        body = await self._answer()
        self.stream_url, self.headers = self._parse_ncco(body)
        self.report.stream_parameters = {k: str(v) for k, v in self.headers.items()}
        await self._open_stream()
        headers = self.headers
        forged = getattr(self, "_stream_parameters", None)  # the base class's forge_token(), where it has one
        if forged is not None:
            headers = forged(dict(headers))
        connected = {"event": "websocket:connected", "content-type": f"audio/l16;rate={self.rate}", **headers}
        await self._send_text(connected)
        self._t0 = asyncio.get_running_loop().time()
        self._started()

    def _sid_field(self) -> dict[str, str]:
        return {}

    async def _send_text(self, *msgs: dict[str, Any]) -> None:
        async with self._send_lock:
            for msg in msgs:
                if self._ws is None or self._ws.closed:
                    return
                try:
                    await self._ws.send_str(orjson.dumps(msg).decode())
                except ConnectionError:
                    return

    def l16_frame(self, ulaw: bytes) -> bytes:
        """A 20 ms μ-law frame as L16 at the stream's rate: 320 bytes at 8 kHz, 640 at 16 kHz."""
        pcm = audioop.ulaw2lin(ulaw, 2)
        if self.rate == 8000:
            return pcm
        x = np.frombuffer(pcm, "<i2").astype(np.float64)
        prev = np.concatenate(([self._last_sample], x[:-1]))
        out = np.empty(2 * len(x))
        out[0::2] = (prev + x) / 2.0  # halfway between the previous sample and this one
        out[1::2] = x
        self._last_sample = float(x[-1])
        return np.round(out).astype("<i2").tobytes()

    async def _send(self, *msgs: dict[str, Any], seq: bool = True) -> None:
        """The base class's script sends `media` messages: here each is one binary L16 frame."""
        async with self._send_lock:
            for msg in msgs:
                if msg.get("event") != "media":
                    continue  # nothing else of the Twilio script has a Vonage counterpart
                frame = self.l16_frame(base64.b64decode(msg["media"]["payload"]))
                if self._ws is None or self._ws.closed:
                    return
                self.sent_frames.append(frame)
                try:
                    await self._ws.send_bytes(frame)
                except ConnectionError:
                    return

    def _stop_message(self) -> dict[str, Any] | None:
        """Vonage sends no stop: hanging up closes the socket."""
        return None

    async def send_dtmf(self, digit: str) -> None:
        """The caller presses a key: a ``websocket:dtmf`` text frame, the digit at the top level."""
        await self._send_text({"event": "websocket:dtmf", "digit": digit, "duration": 260})
        self._event("dtmf_sent", digit=digit)

    async def _echo(self, names: list[str], flushed: bool = False) -> None:
        """Answer the notifies whose audio has played; one dropped at a clear is never answered."""
        if flushed:
            for name in names:
                self._event("mark_flushed", name=name)
                self.report_v.notifies_dropped.append(self._notify_payloads.pop(name, None))
            return
        for name in names:
            self._event("mark_echoed", name=name)
        await self._send_text(*({"event": "websocket:notify", "payload": self._notify_payloads.pop(n, None)}
                                for n in names))

    async def _receive(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self._on_binary(msg.data)
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    self._error(f"websocket error: {ws.exception()!r}")
        except Exception as exc:  # a simulator bug must end the call visibly, not hang it
            self._error(f"caller internal error: {exc!r}")
            self.report.closed_by = "caller"
        finally:
            if not self._stop_sent and not self._closing and not self.report.closed_by:
                self.report.closed_by = "gateway"
                self._event("closed_by_gateway", code=ws.close_code)
            self.report.close_code = ws.close_code
            self.closed.set()

    def heard_ulaw(self, frame: bytes) -> bytes:
        """A 20 ms L16 frame as 8 kHz μ-law for the playback model (160 bytes: 20 ms at 8 bytes a ms)."""
        if self.rate == 16000:
            x = np.frombuffer(frame, "<i2").astype(np.int32)
            frame = ((x[0::2] + x[1::2]) // 2).astype("<i2").tobytes()
        return audioop.lin2ulaw(frame, 2)

    def _on_binary(self, data: bytes) -> None:
        expected = self.rate * 20 // 1000 * 2
        if len(data) != expected:
            self.report_v.frames_rejected += 1
            self._error(f"binary frame of {len(data)} bytes, not 20 ms ({expected} bytes): rejected")
            return
        now = self._now()
        self.received_frames.append(data)
        was_playing = self.playback.is_playing(now)
        start = self.playback.enqueue_audio(self.heard_ulaw(data), now)
        self.report.frames_received += 1
        self.report.media_ms_received += 20.0
        if not was_playing:
            self._event("agent_audio_start")
        if self._answer_starts and self._answer_starts[-1] is None:
            ends = self._speech_ends  # an answer may start in the utterance's trailing quiet
            if len(ends) == len(self._answer_starts) and now >= ends[-1]:
                self._answer_starts[-1] = start

    async def _on_text(self, text: str) -> None:
        try:
            msg = orjson.loads(text)
            action = msg["action"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._error(f"malformed message from the gateway: {text[:120]!r}")
            return
        self.received.append(msg)
        now = self._now()
        if action == "notify":
            self._notifies += 1
            name = str(self._notifies)
            self._notify_payloads[name] = msg.get("payload")
            await self._mark_arrived(name, now)
        elif action == "clear":
            await self._clear_arrived(now)
            await self._send_text({"event": "websocket:cleared"})
        else:
            self._error(f"unknown action from the gateway: {str(action)[:40]!r}")

