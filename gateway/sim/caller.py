"""A simulated Twilio (or SignalWire) caller: the voice webhook, then a bidirectional Media Stream, byte-exact.

It speaks Twilio's protocol (protocol reference §4): signed form POST to ``/voice``, TwiML
``<Connect><Stream>``, a signed WebSocket handshake, ``connected`` / ``start`` / 20 ms ``media`` frames paced
on the loop clock / ``stop``; and it plays the gateway's audio with Twilio's playback model
(:class:`~gateway.sim.playback.TwilioPlayback`): marks echoed when their audio has played, ``clear`` flushes.

``carrier="signalwire"`` speaks SignalWire's copy of that protocol (its cXML ``<Stream>`` reference): UUIDs
for the call, account and stream ids, the webhook signed in ``X-SignalWire-Signature`` with the Signing Key
(same HMAC-SHA1 scheme), no handshake signature, ``connected`` version 0.2.0, and ``start`` / ``media`` /
``stop`` without a top-level ``streamSid``, as its examples show them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import secrets
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp
import orjson
from twilio.request_validator import RequestValidator

from gateway.sim.call_script import SILENT_FRAME, CallRefused, CallReport, CallScript, ScriptPlayer
from gateway.sim.playback import TwilioPlayback

__all__ = ["DIALECTS", "SILENT_FRAME", "CallRefused", "CallReport", "CallScript", "CarrierDialect", "SimulatedCaller",
           "is_loopback_url"]


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True)
class CarrierDialect:
    """What differs between the carriers that speak Twilio's protocol."""

    signature_header: str
    uuid_ids: bool  # CallSid, AccountSid and StreamSid are UUIDs (else CA.../AC.../MZ... hex)
    signs_handshake: bool  # the media WebSocket handshake carries the signature header
    stream_sid_on_every_frame: bool  # start, media and stop carry a top-level streamSid
    version: str  # of the `connected` message


DIALECTS = {
    "twilio": CarrierDialect("X-Twilio-Signature", False, True, True, "1.0.0"),
    "signalwire": CarrierDialect("X-SignalWire-Signature", True, False, False, "0.2.0"),
}


def is_loopback_url(url: str) -> bool:
    """A URL naming this machine (localhost, 127.0.0.0/8, ::1): nothing a carrier could reach anyway."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SimulatedCaller(ScriptPlayer):
    def __init__(self, gateway_url: str, *, auth_token: str | None = None, from_: str = "+15005550006",
                 to: str = "+15005550001", call_sid: str | None = None, media_url: str | None = None,
                 connect_timeout_s: float = 10.0, webhook_path: str | None = None, carrier: str = "twilio",
                 account_sid: str | None = None) -> None:
        if carrier not in DIALECTS:
            raise ValueError(f"carrier must be one of {', '.join(DIALECTS)} (got {carrier!r})")
        self.carrier, self.dialect = carrier, DIALECTS[carrier]
        self.gateway_url = gateway_url.rstrip("/")
        # the gateway's webhook for this carrier; "/voice" is the older alias of Twilio's
        self.webhook_path = webhook_path or f"/voice/{carrier}"
        self.auth_token = auth_token  # Twilio's auth token, or SignalWire's Signing Key
        self.from_, self.to = from_, to
        uuids = self.dialect.uuid_ids
        self.call_sid = call_sid or (str(uuid.uuid4()) if uuids else _sid("CA"))
        self.account_sid = account_sid or (str(uuid.uuid4()) if uuids else _sid("AC"))
        self.stream_sid = str(uuid.uuid4()) if uuids else _sid("MZ")
        self.media_url = media_url
        self.connect_timeout_s = connect_timeout_s
        self.report = CallReport(call_sid=self.call_sid, stream_sid=self.stream_sid)
        self.playback = TwilioPlayback()
        self.received: list[dict[str, Any]] = []  # every JSON message from the gateway
        self.stream_url: str | None = None  # as written in the TwiML
        self.closed = asyncio.Event()  # the media socket is closed (either side)
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._send_lock = asyncio.Lock()
        self._wake_marks = asyncio.Event()
        self._seq = 0
        self._t0: float | None = None  # loop time of the `start` message
        self._events: list[tuple[float, str, dict]] = []  # absolute loop times
        self._answer_starts: list[float | None] = []  # per utterance: first agent audio played after it
        self._speech_ends: list[float] = []  # per utterance started: where its speech ends (known at its start)
        self._stop_sent = False
        self._closing = False
        self._token_override: tuple[str | None] | None = None  # (token,) to send instead of the webhook's

    def forge_token(self, token: str | None) -> None:
        """Send `token` as the stream token in the start instead of the one the webhook answered with
        (None: send none), as an attacker replaying or making up a stream would."""
        self._token_override = (token,)

    def _stream_parameters(self, params: dict[str, str]) -> dict[str, str]:
        """The parameters the start carries back: the webhook's, with the token forged if asked."""
        if self._token_override is None:
            return params
        params = {k: v for k, v in params.items() if k != "token"}
        (token,) = self._token_override
        if token is not None:
            params["token"] = token
        return params

    # ------------------------------------------------------------------ helpers
    def _event(self, kind: str, /, **data: Any) -> None:
        self._events.append((asyncio.get_running_loop().time(), kind, data))

    def _error(self, message: str) -> None:
        self.report.errors.append(message)
        self._event("error", message=message)

    def _now(self) -> float:
        return 0.0 if self._t0 is None else (asyncio.get_running_loop().time() - self._t0) * 1000.0

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.connect_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    # ------------------------------------------------------------------ webhook
    async def webhook(self) -> tuple[int, str]:
        """POST the webhook like the carrier (form-encoded, signed when a token is set); return (status, body)."""
        url = f"{self.gateway_url}{self.webhook_path}"
        params = {
            "CallSid": self.call_sid, "AccountSid": self.account_sid, "From": self.from_, "To": self.to,
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01",
            "Caller": self.from_, "Called": self.to,
        }
        headers = {}
        if self.auth_token:
            signature = RequestValidator(self.auth_token).compute_signature(url, params)
            headers[self.dialect.signature_header] = signature
        return await self._post_webhook(url, params, headers)

    async def _post_webhook(self, url: str, fields: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        """POST the form, record the answer in the report and the timeline; (status, body)."""
        return await self._request_webhook("POST", url, data=fields, headers=headers)

    async def _request_webhook(self, method: str, url: str, *, headers: dict[str, str], data: Any = None,
                               params: dict[str, str] | None = None) -> tuple[int, str]:
        """Send the webhook as the carrier does, record the answer in the report and the timeline;
        (status, body)."""
        async with self._http().request(method, url, data=data, params=params, headers=headers) as resp:
            body = await resp.text()
            status = resp.status
        self.report.webhook_status, self.report.twiml = status, body
        self._event("webhook_answered", status=status)
        return status, body

    def _parse_twiml(self, body: str) -> tuple[str, dict[str, str]]:
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            raise CallRefused(f"webhook answer is not valid XML: {exc}") from None
        stream = root.find("./Connect/Stream") if root.tag == "Response" else None
        if stream is None or not stream.get("url"):
            raise CallRefused("TwiML has no <Response><Connect><Stream url=...>")
        params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        url = stream.get("url", "")
        if not urlsplit(url).scheme:  # relative URL: resolved against the webhook URL, in wss
            url = urljoin(self.gateway_url + self.webhook_path, url).replace("https://", "wss://", 1)
            url = url.replace("http://", "wss://", 1)
        self._check_wss(url, "Stream url", " (Twilio error 31922)")
        parts = urlsplit(url)
        if parts.query:
            self._error("Stream url has a query string (not supported by Twilio)")
        return url, params

    def _socket_url(self, stream_url: str) -> str:
        if self.media_url:
            return self.media_url
        parts = urlsplit(stream_url)
        if parts.scheme == "wss" and urlsplit(self.gateway_url).scheme == "http":
            return urlunsplit(("ws", *parts[1:]))
        return stream_url

    # --------------------------------------------------------------- the stream
    async def _answer(self) -> str:
        """The webhook's answer, or CallRefused when it is not a 200."""
        status, body = await self.webhook()
        if status != 200:
            raise CallRefused(f"webhook answered HTTP {status}")
        return body

    async def _open_stream(self, headers: dict[str, str] | None = None) -> None:
        """Open the media WebSocket at the answer's stream URL (as the carrier would reach it)."""
        assert self.stream_url is not None
        self._ws = await self._http().ws_connect(
            self._socket_url(self.stream_url), headers=headers or {}, autoping=True,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
        )
        self._event("stream_connected", url=self.stream_url)

    def _started(self) -> None:
        """The start is sent: receive, and echo marks as they play."""
        self._event("start_sent")
        self._tasks += [asyncio.create_task(self._receive()), asyncio.create_task(self._echo_marks())]

    async def connect(self) -> None:
        """Webhook, media WebSocket, ``connected`` + ``start``. Raises CallRefused, or aiohttp/OS errors."""
        await self.stream(await self._answer())

    async def stream(self, twiml: str) -> None:
        """Media WebSocket, ``connected`` + ``start`` for the ``<Connect><Stream>`` of `twiml`: the webhook's
        answer, or the TwiML of a call the gateway placed (``gateway.sim.twilio_api``). Raises as `connect`."""
        self.stream_url, params = self._parse_twiml(twiml)
        self.report.stream_parameters = params
        headers = {}
        if self.auth_token and self.dialect.signs_handshake:
            sig = RequestValidator(self.auth_token).compute_signature(self.stream_url, {})
            headers[self.dialect.signature_header] = sig
        await self._open_stream(headers)
        await self._send({"event": "connected", "protocol": "Call", "version": self.dialect.version}, seq=False)
        self._t0 = asyncio.get_running_loop().time()
        start = {
            "accountSid": self.account_sid, "streamSid": self.stream_sid, "callSid": self.call_sid,
            "tracks": ["inbound"], "customParameters": self._stream_parameters(params),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await self._send({"event": "start", "start": start, **self._sid_field()})
        self._started()

    def _sid_field(self) -> dict[str, str]:
        """The top-level streamSid of start, media and stop, where the carrier sends one."""
        return {"streamSid": self.stream_sid} if self.dialect.stream_sid_on_every_frame else {}

    async def _send(self, *msgs: dict[str, Any], seq: bool = True) -> None:
        """Send in order; sequence numbers are assigned under the lock, so they follow the wire order."""
        async with self._send_lock:
            for msg in msgs:
                if seq:
                    self._seq += 1
                    msg = {"event": msg["event"], "sequenceNumber": str(self._seq), **msg}
                if self._ws is None or self._ws.closed:
                    return
                try:
                    await self._ws.send_str(orjson.dumps(msg).decode())
                except ConnectionError:  # the gateway closed under us; the receiver records it
                    return

    async def send_raw(self, text_or_bytes: str | bytes) -> None:
        """Send anything as is (text or binary frame), to probe the gateway's input handling."""
        assert self._ws is not None, "connect() first"
        async with self._send_lock:
            if isinstance(text_or_bytes, bytes):
                await self._ws.send_bytes(text_or_bytes)
            else:
                await self._ws.send_str(text_or_bytes)

    async def _mark_arrived(self, name: str, now: float) -> None:
        """The gateway sent a mark (or the carrier's equivalent): queued behind the audio, echoed when played."""
        self._event("mark_received", name=name)
        echoes = self.playback.enqueue_mark(name, now)
        self._wake_marks.set()
        await self._echo(echoes)

    async def _clear_arrived(self, now: float) -> None:
        """The gateway cleared playback: the queued audio is dropped, the marks due are echoed and the
        dropped ones handed to `_echo(flushed=True)` (echoed or not, as the carrier does)."""
        due = self.playback.advance(now)
        flushed, played = self.playback.clear(now)
        self.report.clears.append({"t_ms": now, "segment_played_ms": played, "flushed_marks": len(flushed)})
        self._event("clear", segment_played_ms=round(played, 1), flushed_marks=len(flushed))
        if self._answer_starts and (self._answer_starts[-1] or 0.0) > now:
            self._answer_starts[-1] = None  # cleared before it played
        self._wake_marks.set()
        await self._echo(due)
        await self._echo(flushed, flushed=True)

    def _check_wss(self, url: str, what: str, note: str = "") -> None:
        """A stream URL must be wss; ws is tolerated for a plain-http gateway (which cannot have TLS anyway),
        silently on this machine."""
        scheme = urlsplit(url).scheme
        if scheme == "wss":
            return
        problem = f"{what} scheme {scheme!r} is not wss{note}"
        if scheme == "ws" and urlsplit(self.gateway_url).scheme == "http":
            if not is_loopback_url(self.gateway_url):
                self._event("twiml_warning", message=problem)
        else:
            self._error(problem)

    def _stop_message(self) -> dict[str, Any] | None:
        """The carrier's hang-up message; None for a carrier that just closes the socket."""
        return {"event": "stop", **self._sid_field(),
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}}

    async def send_stop(self) -> None:
        """Hang up the way the carrier does: its stop message, or closing the socket."""
        if self._stop_sent:
            return
        self._stop_sent = True
        self.report.closed_by = self.report.closed_by or "caller"
        stop = self._stop_message()
        if stop is not None:
            await self._send(stop)
            self._event("stop_sent")
            return
        self._event("hangup")
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()

    def _dtmf_message(self, digit: str) -> dict[str, Any]:
        """The carrier's message for a key the caller pressed (Twilio's and SignalWire's, streamSid included)."""
        return {"event": "dtmf", "streamSid": self.stream_sid, "dtmf": {"track": "inbound_track", "digit": digit}}

    async def send_dtmf(self, digit: str) -> None:
        """The caller presses a key."""
        await self._send(self._dtmf_message(digit))
        self._event("dtmf_sent", digit=digit)

    def _mark_message(self, name: str) -> dict[str, Any]:
        """The carrier's message that a mark's audio has played."""
        return {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}

    async def _echo(self, names: list[str], flushed: bool = False) -> None:
        if not names:
            return
        for name in names:
            self._event("mark_flushed" if flushed else "mark_echoed", name=name)
        await self._send(*(self._mark_message(n) for n in names))

    async def _echo_marks(self) -> None:
        """Echo each mark when the playback model says its audio has played."""
        while True:
            due = self.playback.next_due_ms()
            timeout = None if due is None else max(0.0, (due - self._now()) / 1000.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_marks.wait(), timeout)
            self._wake_marks.clear()
            await self._echo(self.playback.advance(self._now()))

    async def _receive(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self._error(f"binary frame from the gateway ({len(msg.data)} bytes; Twilio error 31950)")
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

    async def _on_text(self, text: str) -> None:
        try:
            msg = orjson.loads(text)
            event = msg["event"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._error(f"malformed message from the gateway: {text[:120]!r}")
            return
        self.received.append(msg)
        if event in ("media", "mark", "clear") and msg.get("streamSid") != self.stream_sid:
            self._error(f"{event} with streamSid {msg.get('streamSid')!r}, expected {self.stream_sid}")
            return
        now = self._now()
        if event == "media":
            try:
                audio = base64.b64decode(msg["media"]["payload"], validate=True)
            except (KeyError, TypeError, binascii.Error):
                self._error("media message without a valid base64 media.payload")
                return
            was_playing = self.playback.is_playing(now)
            start = self.playback.enqueue_audio(audio, now)
            self.report.frames_received += 1
            self.report.media_ms_received += len(audio) / 8.0
            if not was_playing:
                self._event("agent_audio_start")
            if self._answer_starts and self._answer_starts[-1] is None and audio:
                ends = self._speech_ends  # an answer may start in the utterance's trailing quiet
                if len(ends) == len(self._answer_starts) and now >= ends[-1]:
                    self._answer_starts[-1] = start
        elif event == "mark":
            name = (msg.get("mark") or {}).get("name")
            if not isinstance(name, str):
                self._error("mark message without mark.name")
                return
            await self._mark_arrived(name, now)
        elif event == "clear":
            await self._clear_arrived(now)
        else:
            self._event("gateway_event", event=event)

    async def run(self, script: CallScript) -> CallReport:
        """Webhook, media stream and the script, end to end. Never raises for a refused or failed call."""
        try:
            await self.connect()
        except CallRefused as exc:
            self._error(f"call refused: {exc}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            what = "media stream failed" if self.report.webhook_status else "cannot reach the gateway"
            self._error(f"{what}: {type(exc).__name__}: {exc}")
        except BaseException:
            await self.close()
            raise
        else:
            return await self.speak(script)
        await self.close()
        return self._finish()

    async def speak(self, script: CallScript) -> CallReport:
        """After :meth:`connect`: play the script, send ``stop`` unless the gateway hung up, close, report."""
        try:
            await self._speak(script)
            if not self.closed.is_set():
                await self.send_stop()
            return self._finish()
        finally:
            await self.close()
            self.report.close_code = self._ws.close_code if self._ws is not None else None

    async def wait_closed(self, timeout_s: float) -> int | None:
        """Wait (bounded) for the media socket to close; return its close code."""
        await asyncio.wait_for(self.closed.wait(), timeout_s)
        return self._ws.close_code if self._ws is not None else None

    async def close(self) -> None:
        """Cancel and await every task, close the socket and the HTTP session. Idempotent."""
        self._closing = True
        if not self.report.closed_by and self._ws is not None and not self.closed.is_set():
            self.report.closed_by = "caller"
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
