"""A loopback fake of Twilio's REST API, for the calls the gateway places and the live calls it moves.

It answers the two requests the gateway makes, as the twilio package sends them (form-encoded, Basic auth):

- ``POST /2010-04-01/Accounts/{AC}/Calls.json`` (Calls resource, create): answered 201 with a call like
  Twilio's (a ``CA`` + 32 hex sid, status ``queued``), then the call is "dialled": the signed status callbacks
  of the StatusCallbackEvent asked for (initiated, ringing, answered as ``in-progress``, then the final status
  with ``CallDuration``), and, once answered, the media stream of the TwiML's ``<Connect><Stream>`` opened by a
  :class:`~gateway.sim.caller.SimulatedCaller`. The callee answers as ``human`` (says a turn and hangs up),
  ``machine`` (a voicemail greeting and a beep, then the async AMD callback ``AnsweredBy=machine_end_beep``),
  or not at all: ``busy``, ``no-answer``, ``failed`` (the status callback only).
- ``POST /2010-04-01/Accounts/{AC}/Calls/{CA}.json`` (update): ``Twiml`` or ``Status``. On a call it dialled,
  new TwiML ends the ``<Connect><Stream>`` (``stop``, then the socket closes) and the call completes;
  ``Status=canceled`` stops a call still ringing.

Every request is recorded (``requests`` for updates, ``created`` for creations), so tests assert what the
gateway sent. Callbacks are signed with the auth token by twilio's ``RequestValidator``. ``python -m gateway
fake-twilio`` runs it on its own and prints what to set on the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import math
import secrets
import sys
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp import BasicAuth, web
from twilio.request_validator import RequestValidator

from gateway.sim.audio import silence, speech_like, tone
from gateway.sim.caller import CallReport, CallScript, SimulatedCaller

ANSWERS = ("human", "machine", "busy", "no-answer", "failed")
CALLS_PATH = "/2010-04-01/Accounts/{account}/Calls.json"
CALL_PATH = "/2010-04-01/Accounts/{account}/Calls/{call}.json"


def human_script() -> CallScript:
    """The callee says one short turn, hears the answer, hangs up."""
    return CallScript(utterances=[speech_like(600, seed=7)], hangup_after_idle_ms=700)


def machine_script() -> CallScript:
    """An answering machine: its greeting, a beep, then it records (silence) until the line goes quiet."""
    greeting = speech_like(1500, seed=11) + silence(200) + tone(400, 1000.0)
    return CallScript(utterances=[greeting], lead_silence_ms=200, answer_timeout_ms=6000, hangup_after_idle_ms=1500)


@dataclass
class DialledCall:
    sid: str
    account: str
    to: str
    from_: str
    twiml: str
    answer: str
    status_url: str | None
    events: tuple[str, ...]
    amd_url: str | None
    status: str = "queued"
    sequence: int = 0
    caller: SimulatedCaller | None = None
    report: CallReport | None = None
    answered_at: float | None = None
    ended_by: str | None = None  # "update" when the REST API ended or moved it
    updates: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)  # {"kind", "fields", "http_status"}
    errors: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    cancel: asyncio.Event = field(default_factory=asyncio.Event)  # Status=canceled while ringing


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class FakeTwilioApi:
    """Twilio's REST API on a loopback port. `answer` is how the dialled callee answers (ANSWERS)."""

    def __init__(self, *, auth_token: str | None = None, answer: str = "human", ring_ms: float = 50.0,
                 dial: bool = True, human: CallScript | None = None, machine: CallScript | None = None,
                 on_event: Any = None) -> None:
        if answer not in ANSWERS:
            raise ValueError(f"answer must be one of {', '.join(ANSWERS)} (got {answer!r})")
        self.auth_token, self.answer, self.ring_ms, self.dial = auth_token, answer, ring_ms, dial
        self.human, self.machine = human, machine
        self.on_event = on_event  # called with (call, what) as a dialled call goes (the CLI prints it)
        self.url = ""
        self.requests: list[dict[str, Any]] = []  # updates: account, call, twiml, user, password (+ status)
        self.created: list[dict[str, Any]] = []  # creations: account, user, password, form (repeated keys: lists)
        self.received = asyncio.Event()  # an update arrived
        self.status = 200  # answer updates with this (an error JSON otherwise)
        self.verdict_first = False  # a human's AMD verdict posted before the stream opens (Twilio may be that quick)
        self.answer_when: asyncio.Event | None = None  # hold update answers until this is set
        self.calls: dict[str, DialledCall] = {}
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    # --- the server --------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeTwilioApi:
        app = web.Application()
        app.router.add_post(CALLS_PATH, self.create_call)
        app.router.add_post(CALL_PATH, self.update_call)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for call in self.calls.values():
            if call.caller is not None:
                await call.caller.close()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _authorized(self, request: web.Request) -> tuple[str, str] | None:
        try:
            auth = BasicAuth.decode(request.headers.get("Authorization", ""))
        except ValueError:
            return None
        if self.auth_token is not None and auth.password != self.auth_token and not auth.login.startswith("SK"):
            return None
        return auth.login, auth.password

    @staticmethod
    def _twilio_error(status: int, code: int, message: str) -> web.Response:
        response = web.json_response({"code": code, "message": message, "status": status,
                                      "more_info": f"https://www.twilio.com/docs/errors/{code}"}, status=status)
        response.force_close()
        return response

    async def create_call(self, request: web.Request) -> web.Response:
        form = await request.post()
        credentials = self._authorized(request)
        fields: dict[str, Any] = {}
        for key in form:
            values = form.getall(key)
            fields[key] = values[0] if len(values) == 1 else list(values)
        self.created.append({"account": request.match_info["account"], "user": credentials and credentials[0],
                             "password": credentials and credentials[1], "form": fields})
        if credentials is None:
            return self._twilio_error(401, 20003, "Authenticate")
        if not fields.get("To") or not fields.get("From") or not (fields.get("Twiml") or fields.get("Url")):
            return self._twilio_error(400, 21201, "To, From and Twiml (or Url) are required")
        events = fields.get("StatusCallbackEvent") or ()
        call = DialledCall(sid=_sid("CA"), account=request.match_info["account"], to=fields["To"],
                           from_=fields["From"], twiml=fields.get("Twiml") or "", answer=self.answer,
                           status_url=fields.get("StatusCallback"),
                           events=tuple([events] if isinstance(events, str) else events),
                           amd_url=fields.get("AsyncAmdStatusCallback") if fields.get("AsyncAmd") == "true" else None)
        self.calls[call.sid] = call
        now = email.utils.formatdate(usegmt=True)
        response = web.json_response({
            "sid": call.sid, "account_sid": call.account, "to": call.to, "from": call.from_, "status": "queued",
            "direction": "outbound-api", "api_version": "2010-04-01", "date_created": now, "date_updated": now,
            "uri": CALL_PATH.format(account=call.account, call=call.sid)}, status=201)
        response.force_close()  # no keep-alive: the task count can go back to its baseline
        if self.dial:
            self._spawn(self._dial(call))
        return response

    async def update_call(self, request: web.Request) -> web.Response:
        form = await request.post()
        credentials = self._authorized(request) or ("", "")
        entry = {"account": request.match_info["account"], "call": request.match_info["call"],
                 "twiml": form.get("Twiml"), "user": credentials[0], "password": credentials[1]}
        if form.get("Status"):
            entry["status"] = form.get("Status")
        self.requests.append(entry)
        self.received.set()
        if self.answer_when is not None:
            await asyncio.wait_for(self.answer_when.wait(), 5)
        if self.status != 200:
            return self._twilio_error(self.status, 20404, "not found")
        call = self.calls.get(request.match_info["call"])
        if call is not None:
            call.updates.append(entry)
            self._spawn(self._updated(call, entry))
        response = web.json_response({"sid": request.match_info["call"], "status": "in-progress",
                                      "account_sid": request.match_info["account"]})
        response.force_close()
        return response

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- a dialled call ----------------------------------------------------------------------------

    def _event(self, call: DialledCall, what: str) -> None:
        if self.on_event is not None:
            self.on_event(call, what)

    async def _updated(self, call: DialledCall, entry: dict[str, Any]) -> None:
        """New TwiML or a status ends the stream (Twilio's `stop`, then the socket closes)."""
        call.ended_by = "update"
        if call.caller is None:
            call.cancel.set()
            return
        with contextlib.suppress(Exception):
            await call.caller.send_stop()
            await call.caller.close()
        how = "Twiml" if entry.get("twiml") else f"Status={entry.get('status')}"
        self._event(call, f"ended by a REST update ({how})")

    async def _dial(self, call: DialledCall) -> None:
        loop = asyncio.get_running_loop()
        final = "completed"
        try:
            for status in ("initiated", "ringing"):
                await self._progress(call, status)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(call.cancel.wait(), self.ring_ms / 1000.0)
                if call.cancel.is_set():
                    final = "canceled"
                    return
            if call.answer in ("busy", "no-answer", "failed"):
                final = call.answer
                return
            call.answered_at = loop.time()
            await self._progress(call, "in-progress")
            await self._connect(call)
        except Exception as exc:  # a simulator bug must show, not hang the call
            call.errors.append(f"fake Twilio internal error: {exc!r}")
            final = "failed"
        finally:
            duration = 0 if call.answered_at is None else math.ceil(loop.time() - call.answered_at)
            with contextlib.suppress(Exception):
                await self._progress(call, final, duration)
            call.done.set()

    async def _connect(self, call: DialledCall) -> None:
        """The callee answered: open the TwiML's stream and play the human's or the machine's part."""
        stream_url = _stream_url(call.twiml)
        parts = urlsplit(stream_url)
        gateway = urlunsplit(("https" if parts.scheme == "wss" else "http", parts.netloc, "", "", ""))
        caller = SimulatedCaller(gateway, auth_token=self.auth_token, call_sid=call.sid, account_sid=call.account,
                                 from_=call.to, to=call.from_)
        call.caller = caller
        early = self.verdict_first and call.answer == "human" and call.amd_url is not None
        if early:
            await self._callback(call, "amd", call.amd_url or "",
                                 {"AnsweredBy": "human", "MachineDetectionDuration": "700"})
        try:
            await caller.stream(call.twiml)
        except Exception as exc:
            call.errors.append(f"media stream failed: {type(exc).__name__}: {exc}")
            self._event(call, f"media stream failed: {exc}")
            await caller.close()
            return
        self._event(call, f"answered ({call.answer}): media stream open")
        if call.answer == "machine":
            speaking = asyncio.create_task(caller.speak(self.machine or machine_script()))
            # the caller has no event for the end of an utterance: polled
            while not caller.report.utterance_ends_ms and not caller.closed.is_set() and not speaking.done():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            if call.amd_url and not caller.closed.is_set():
                await self._callback(call, "amd", call.amd_url, {"AnsweredBy": "machine_end_beep",
                                                                  "MachineDetectionDuration": "2200"})
            call.report = await speaking
        else:
            if call.amd_url and not early:
                await self._callback(call, "amd", call.amd_url, {"AnsweredBy": "human",
                                                                  "MachineDetectionDuration": "900"})
            call.report = await caller.speak(self.human or human_script())
        report = call.report
        self._event(call, f"stream closed by the {report.closed_by or 'caller'}: heard {len(report.heard) // 8} ms "
                    f"of the agent" + (f"; errors: {'; '.join(report.errors)}" if report.errors else ""))

    async def _progress(self, call: DialledCall, status: str, duration: int | None = None) -> None:
        """A status callback, when the event was asked for (the final one always is, as Twilio does)."""
        call.status = status
        event = {"initiated": "initiated", "ringing": "ringing", "in-progress": "answered"}.get(status, "completed")
        self._event(call, status + (f" after {duration} s" if duration is not None else ""))
        if call.status_url is None or (event != "completed" and event not in call.events):
            return
        fields = {"CallStatus": status}
        if event == "completed":
            fields.update({"CallDuration": str(duration or 0), "Duration": str(math.ceil((duration or 0) / 60))})
        await self._callback(call, "status", call.status_url, fields)

    async def _callback(self, call: DialledCall, kind: str, url: str, extra: dict[str, str]) -> None:
        fields = {"AccountSid": call.account, "CallSid": call.sid, "ApiVersion": "2010-04-01", **extra}
        if kind == "status":
            fields.update({"From": call.from_, "To": call.to, "Caller": call.from_, "Called": call.to,
                           "Direction": "outbound-api", "CallbackSource": "call-progress-events",
                           "SequenceNumber": str(call.sequence), "Timestamp": email.utils.formatdate(usegmt=True)})
            call.sequence += 1
        headers = {}
        if self.auth_token:
            headers["X-Twilio-Signature"] = RequestValidator(self.auth_token).compute_signature(url, fields)
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        record: dict[str, Any] = {"kind": kind, "url": url, "fields": fields, "http_status": None}
        call.callbacks.append(record)
        try:
            async with self._http.post(url, data=fields, headers=headers) as resp:
                record["http_status"] = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            call.errors.append(f"{kind} callback failed: {type(exc).__name__}")


def _stream_url(twiml: str) -> str:
    import xml.etree.ElementTree as ET

    stream = ET.fromstring(twiml).find("./Connect/Stream")
    if stream is None or not stream.get("url"):
        raise ValueError("the call's TwiML has no <Connect><Stream url>")
    return stream.get("url", "")


# --- python -m gateway fake-twilio ------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="port of the fake API (default 8090)")
    parser.add_argument("--answer", choices=ANSWERS, default="human", help="how every dialled callee answers "
                        "(default human: says a turn and hangs up; machine: a greeting and a beep, then the AMD "
                        "callback; busy, no-answer, failed: the status callback only)")
    parser.add_argument("--auth-token", default=None, help="the auth token that signs the callbacks, the gateway's "
                        "TWILIO_AUTH_TOKEN (default: a new random one, printed)")
    parser.add_argument("--gateway", default="http://127.0.0.1:8080", help="the gateway's base URL, for the "
                        "printed PUBLIC_URL and curl (default http://127.0.0.1:8080)")


def run(args: argparse.Namespace) -> int:
    token = args.auth_token or secrets.token_urlsafe(24)
    admin = secrets.token_urlsafe(18)
    account = _sid("AC")
    gateway = args.gateway.rstrip("/")

    def show(call: DialledCall, what: str) -> None:
        print(f"{call.sid} to {call.to}: {what}", flush=True)

    async def main() -> None:
        fake = FakeTwilioApi(auth_token=token, answer=args.answer, ring_ms=800.0, on_event=show)
        await fake.start(args.host, args.port)
        port = urlsplit(gateway).port or 8080
        print(f"fake Twilio REST API on {fake.url}, callees answer as: {args.answer}\n\n"
              f"Start the gateway with (offline, no key needed):\n"
              f"  TWILIO_API_BASE_URL={fake.url} TWILIO_ACCOUNT_SID={account} TWILIO_AUTH_TOKEN={token} \\\n"
              f"  ADMIN_TOKEN={admin} PUBLIC_URL={gateway} PORT={port} make run\n\n"
              f"Then place a call:\n"
              f"  curl -sS -X POST {gateway}/calls -H 'Authorization: Bearer {admin}' \\\n"
              f"    -H 'Content-Type: application/json' \\\n"
              f"    -d '{{\"to\": \"+14155550100\", \"from\": \"+14155550199\"}}'\n",
              flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await fake.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"fake-twilio: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
