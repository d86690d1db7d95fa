"""SimulatedCaller over real loopback sockets against a small fake gateway."""

from __future__ import annotations

import argparse
import asyncio
import base64
import re
import socket
import struct
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType, web
from twilio.request_validator import RequestValidator

from gateway.sim import call_command
from gateway.sim.audio import silence, speech_like, tone
from gateway.sim.caller import CallReport, CallScript, SimulatedCaller, is_loopback_url
from gateway.sim.wav import read_wav_as_ulaw

TOKEN = "test-auth-token"
PARAMS = {"token": "tok-123", "tenant": "acme"}
ANSWER_CHUNKS_MS = (200, 200, 200)


def is_speech(frame: bytes) -> bool:
    return any(b not in (0xFF, 0x7F) for b in frame)


class FakeGateway:
    """`/voice` answers TwiML; `/media` answers each utterance with audio + a mark after each chunk."""

    def __init__(
        self,
        *,
        auth_token: str | None = None,
        clear_on_barge_in: bool = False,
        close_after_answers: int | None = None,
    ) -> None:
        self.auth_token = auth_token
        self.clear_on_barge_in = clear_on_barge_in
        self.close_after_answers = close_after_answers
        self.mute = False
        self.port = 0
        self.webhook_form: dict[str, str] = {}
        self.ws_signature_ok: bool | None = None
        self.messages: list[tuple[float, dict[str, Any]]] = []  # (arrival loop time, message)
        self.answers: list[dict[str, Any]] = []  # {"first_send", "marks": [(name, cum_ms)], "audio"}
        self.mark_echoes: dict[str, float] = {}
        self.clears: list[tuple[float, float]] = []  # (sent at, elapsed since the answer's first audio)
        self.stopped = asyncio.Event()
        self.runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/voice/twilio", self.voice)  # where the caller posts by default
        app.router.add_post("/voice", self.voice)
        app.router.add_get("/media", self.media)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def voice(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.webhook_form = form
        if self.auth_token is not None:
            sig = request.headers.get("X-Twilio-Signature", "")
            if not RequestValidator(self.auth_token).validate(str(request.url), form, sig):
                return web.Response(status=403, text="bad signature")
        params = "".join(f'<Parameter name="{k}" value="{v}"/>' for k, v in PARAMS.items())
        twiml = (
            f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
            f'<Stream url="wss://127.0.0.1:{self.port}/media">{params}</Stream></Connect></Response>'
        )
        return web.Response(text=twiml, content_type="text/xml")

    async def media(self, request: web.Request) -> web.WebSocketResponse:
        if self.auth_token is not None:
            url = f"wss://127.0.0.1:{self.port}/media"
            sig = request.headers.get("X-Twilio-Signature", "")
            self.ws_signature_ok = RequestValidator(self.auth_token).validate(url, {}, sig)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        sid, in_speech, tasks = "", False, []
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            now, data = loop.time(), orjson.loads(msg.data)
            self.messages.append((now, data))
            event = data["event"]
            if event == "start":
                sid = data["streamSid"]
            elif event == "mark":
                self.mark_echoes[data["mark"]["name"]] = now
            elif event == "stop":
                self.stopped.set()
                break
            elif event == "media":
                speech = is_speech(base64.b64decode(data["media"]["payload"]))
                playing = any(n not in self.mark_echoes for a in self.answers for n, _ in a["marks"])
                if speech and not in_speech and playing and self.clear_on_barge_in:
                    await ws.send_str(orjson.dumps({"event": "clear", "streamSid": sid}).decode())
                    self.clears.append((loop.time(), loop.time() - self.answers[-1]["first_send"]))
                if in_speech and not speech:
                    tasks.append(asyncio.create_task(self.answer(ws, sid)))
                in_speech = speech
        await asyncio.gather(*tasks)
        await ws.close()
        return ws

    async def answer(self, ws: web.WebSocketResponse, sid: str) -> None:
        if self.mute:
            return
        n = len(self.answers) + 1
        record: dict[str, Any] = {"first_send": asyncio.get_running_loop().time(), "marks": [], "audio": b""}
        self.answers.append(record)
        cum = 0
        for i, ms in enumerate(ANSWER_CHUNKS_MS):
            chunk = tone(ms, 300.0 + 100 * n + 10 * i)
            cum += ms
            record["audio"] += chunk
            record["marks"].append((f"a{n}-{i}", cum))
            payload = base64.b64encode(chunk).decode()
            await ws.send_str(
                orjson.dumps({"event": "media", "streamSid": sid, "media": {"payload": payload}}).decode()
            )
            await ws.send_str(
                orjson.dumps({"event": "mark", "streamSid": sid, "mark": {"name": f"a{n}-{i}"}}).decode()
            )
        if self.close_after_answers == n:
            await ws.send_bytes(b"\x00\x01")
            await ws.close(code=4001, message=b"done")

    def of(self, event: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.messages if m["event"] == event]


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    gw = FakeGateway(auth_token=TOKEN, clear_on_barge_in=True)
    gw.url = await gw.start()  # type: ignore[attr-defined]
    yield gw
    await gw.stop()


def script(**kw: Any) -> CallScript:
    base: dict[str, Any] = {
        "utterances": [speech_like(400, seed=1), speech_like(400, seed=2)],
        "lead_silence_ms": 100.0,
        "idle_before_next_ms": 200.0,
        "hangup_after_idle_ms": 200.0,
        "answer_timeout_ms": 3000.0,
    }
    return CallScript(**{**base, **kw})


async def call(gw: FakeGateway, sc: CallScript, token: str | None = TOKEN) -> Any:
    caller = SimulatedCaller(gw.url, auth_token=token)  # type: ignore[attr-defined]
    return await asyncio.wait_for(caller.run(sc), 20.0)


async def test_twilio_wire_messages_pacing_and_marks(gateway: FakeGateway) -> None:
    report = await call(gateway, script())
    assert report.errors == [] and report.closed_by == "caller"
    # webhook: Twilio's form parameters, signed
    form = gateway.webhook_form
    assert re.fullmatch(r"CA[0-9a-f]{32}", form["CallSid"]) and re.fullmatch(
        r"AC[0-9a-f]{32}", form["AccountSid"]
    )
    assert (
        form["CallStatus"] == "ringing"
        and form["Direction"] == "inbound"
        and form["ApiVersion"] == "2010-04-01"
    )
    assert form["From"] == form["Caller"] == "+15005550006" and form["To"] == form["Called"] == "+15005550001"
    assert gateway.ws_signature_ok is True
    # connected, then start with the TwiML parameters in customParameters
    msgs = [m for _, m in gateway.messages]
    assert msgs[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = msgs[1]
    assert start["event"] == "start" and start["sequenceNumber"] == "1"
    assert re.fullmatch(r"MZ[0-9a-f]{32}", start["streamSid"]) and start["streamSid"] == report.stream_sid
    assert start["start"] == {
        "accountSid": form["AccountSid"],
        "streamSid": report.stream_sid,
        "callSid": form["CallSid"],
        "tracks": ["inbound"],
        "customParameters": PARAMS,
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    assert report.stream_parameters == PARAMS
    # one sequence across every message after connected
    assert [int(m["sequenceNumber"]) for m in msgs[1:]] == list(range(1, len(msgs)))
    assert all(m["streamSid"] == report.stream_sid for m in msgs[1:])
    # media: 20 ms frames, chunk from "1", timestamps every 20 ms, paced on real time
    media = gateway.of("media")
    assert len(media) == report.frames_sent > 50
    start_at = gateway.of("start")[0][0]
    for i, (t, m) in enumerate(media):
        assert set(m) == {"event", "sequenceNumber", "media", "streamSid"}
        assert m["media"]["track"] == "inbound" and m["media"]["chunk"] == str(i + 1)
        assert m["media"]["timestamp"] == str(20 * i)
        assert len(m["media"]["payload"]) == 216 and len(base64.b64decode(m["media"]["payload"])) == 160
        assert t >= start_at + (i + 1) * 0.020 - 0.003, f"frame {i} early"
    assert media[-1][0] - start_at <= len(media) * 0.020 + 0.080
    # stop last, Twilio's shape
    stop = msgs[-1]
    assert stop == {
        "event": "stop",
        "sequenceNumber": stop["sequenceNumber"],
        "streamSid": report.stream_sid,
        "stop": {"accountSid": form["AccountSid"], "callSid": form["CallSid"]},
    }
    # marks echoed after their audio played (never before), in order, and heard byte-exact
    assert len(gateway.answers) == 2
    for ans in gateway.answers:
        for name, cum_ms in ans["marks"]:
            late = gateway.mark_echoes[name] - ans["first_send"] - cum_ms / 1000.0
            assert 0.0 <= late < 0.040, (name, late)
    assert report.marks_echoed == [n for a in gateway.answers for n, _ in a["marks"]]
    assert report.marks_flushed == [] and report.clears == []
    assert report.heard == b"".join(a["audio"] for a in gateway.answers)
    assert report.media_ms_received == 1200.0 and report.frames_received == 6
    # turns: utterance end -> first agent audio played
    assert len(report.utterance_ends_ms) == 2 and len(report.turn_latencies_ms) == 2
    assert all(15.0 <= lat <= 80.0 for lat in report.turn_latencies_ms)
    assert report.utterance_ends_ms[0] == 100.0 + 400.0
    assert report.speech_ends_ms == report.utterance_ends_ms  # no quiet at the end of these utterances
    assert report.answer_heard_after_ms == pytest.approx(report.turn_latencies_ms)
    names = [name for _, name, _ in report.events]
    for expected in (
        "webhook_answered",
        "stream_connected",
        "utterance_start",
        "utterance_end",
        "agent_audio_start",
        "mark_echoed",
        "agent_audio_end",
        "stop_sent",
    ):
        assert expected in names


async def test_answer_heard_after_starts_at_the_end_of_speech_not_of_the_audio(gateway: FakeGateway) -> None:
    """A recorded utterance ends with quiet (espeak-ng's "Hello": 300 ms); the VAD ends the turn from
    the end of speech, and so does the caller's figure. The fake gateway answers as soon as speech stops."""
    quiet = silence(300)
    report = await call(gateway, script(utterances=[speech_like(400, seed=1) + quiet, speech_like(400) + quiet]))
    assert report.errors == [] and len(report.answer_heard_after_ms) == 2
    assert [e - s for e, s in zip(report.utterance_ends_ms, report.speech_ends_ms, strict=True)] == [300.0, 300.0]
    for heard, turn in zip(report.answer_heard_after_ms, report.turn_latencies_ms, strict=True):
        assert heard is not None and 0.0 <= heard <= 80.0  # answered in the quiet, counted from the speech
        assert turn == pytest.approx(heard - 300.0)


async def test_barge_in_clear_flushes_marks_and_measures_played_ms(gateway: FakeGateway) -> None:
    report = await call(gateway, script(barge_in_after_ms=300.0))
    assert report.errors == []
    assert len(gateway.clears) == 1 and len(report.clears) == 1
    sent_at, elapsed = gateway.clears[0]
    clear = report.clears[0]
    assert abs(clear["segment_played_ms"] - elapsed * 1000.0) <= 5.0
    assert 300.0 <= clear["segment_played_ms"] <= 400.0
    # a1-0 (200 ms) had played; a1-1 and a1-2 are flushed by the clear and echoed at once
    assert clear["flushed_marks"] == 2 and report.marks_flushed == ["a1-1", "a1-2"]
    assert report.marks_echoed == ["a1-0", "a2-0", "a2-1", "a2-2"]
    for name in ("a1-1", "a1-2"):
        assert 0.0 <= gateway.mark_echoes[name] - sent_at < 0.010
    assert len(report.barge_ins_ms) == 1
    # heard: the first answer up to the clear (byte-exact prefix), then the whole second answer
    first, second = gateway.answers[0]["audio"], gateway.answers[1]["audio"]
    assert report.heard.endswith(second)
    cut = report.heard[: -len(second)]
    assert first.startswith(cut) and abs(len(cut) / 8 - clear["segment_played_ms"]) <= 0.125
    assert len(report.turn_latencies_ms) == 2


async def test_wrong_token_is_refused_without_exception(gateway: FakeGateway) -> None:
    report = await call(gateway, script(), token="wrong-token")
    assert report.webhook_status == 403
    assert report.frames_sent == 0 and gateway.messages == []
    assert any("refused" in e for e in report.errors)


async def test_unsigned_call_is_refused_by_a_validating_gateway(gateway: FakeGateway) -> None:
    report = await call(gateway, script(), token=None)
    assert report.webhook_status == 403 and report.errors


async def test_gateway_hangs_up() -> None:
    gw = FakeGateway(close_after_answers=1)
    gw.url = await gw.start()  # type: ignore[attr-defined]
    try:
        report = await call(gw, script(), token=None)
    finally:
        await gw.stop()
    assert report.closed_by == "gateway" and report.close_code == 4001
    assert any("binary frame" in e for e in report.errors)
    assert not gw.stopped.is_set() and len(report.utterance_ends_ms) == 1


async def test_no_answer_times_out_and_hangs_up() -> None:
    gw = FakeGateway()
    gw.mute = True
    gw.url = await gw.start()  # type: ignore[attr-defined]
    try:
        report = await call(gw, script(answer_timeout_ms=300.0), token=None)
    finally:
        await gw.stop()
    assert report.closed_by == "caller" and gw.stopped.is_set()
    assert report.turn_latencies_ms == [] and report.answer_starts_ms == [None, None]
    assert [e for e in report.errors if "no agent answer" in e] == report.errors and len(report.errors) == 2
    ends = report.utterance_ends_ms
    assert ends[1] - ends[0] == pytest.approx(300.0 + 400.0, abs=25.0)  # next one right after the timeout


async def test_low_level_connect_send_raw_stop() -> None:
    gw = FakeGateway()
    gw.url = await gw.start()  # type: ignore[attr-defined]
    caller = SimulatedCaller(gw.url)  # type: ignore[attr-defined]
    try:
        await caller.connect()
        await caller.send_raw('{"event":"dtmf","streamSid":"x","dtmf":{"digit":"1"}}')
        await caller.send_stop()
        await asyncio.wait_for(gw.stopped.wait(), 5.0)
        assert await caller.wait_closed(5.0) is not None
    finally:
        await caller.close()
        await gw.stop()
    assert [m["event"] for _, m in gw.messages] == ["connected", "start", "dtmf", "stop"]
    assert caller.report.closed_by == "caller"


# ------------------------------------------------------------------ `call` command
@pytest.fixture
def threaded_gateway() -> Iterator[str]:
    """The fake gateway on its own loop in a thread, for the synchronous command."""
    loop = asyncio.new_event_loop()
    gw = FakeGateway(auth_token=TOKEN)
    ready = threading.Event()
    url: list[str] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        url.append(loop.run_until_complete(gw.start()))
        ready.set()
        loop.run_forever()
        loop.run_until_complete(gw.stop())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(5.0)
    yield url[0]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5.0)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="call")
    call_command.add_arguments(parser)
    return parser.parse_args(argv)


def test_call_command_reports_and_records(
    threaded_gateway: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "heard.wav"
    args = parse(["--url", threaded_gateway, "--turns", "1", "--auth-token", TOKEN, "--record", str(out)])
    assert call_command.run(args) == 0
    text = capsys.readouterr().out
    assert "webhook: HTTP 200" in text and "utterance 1 ended at" in text
    assert re.search(r"utterance 1 ended at \d+ ms: answer heard after \d+ ms\n", text)
    assert "answer heard after = end of your speech" in text and "heard_latency_ms" in text  # both defined
    assert "frames sent" in text and "closed by caller" in text
    # marks are -v only, the stream token is shortened, no local ws warning
    assert "mark_echoed" not in text and "mark_received" not in text
    assert "(6 mark events not shown; -v lists them)" in text
    assert "token=tok…, tenant=acme" in text and "tok-123" not in text
    assert "warning" not in text
    heard = read_wav_as_ulaw(out)
    assert len(heard) > 600 * 8  # timeline: silence until the answer, then 600 ms of answer, then idle


def test_call_command_json(threaded_gateway: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["--url", threaded_gateway, "--turns", "1", "--auth-token", TOKEN, "--json"])
    assert call_command.run(args) == 0
    data = orjson.loads(capsys.readouterr().out)
    assert data["heard_ms"] == 600.0 and len(data["turn_latencies_ms"]) == 1 and data["errors"] == []


def test_call_command_verbose_lists_the_marks(threaded_gateway: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["--url", threaded_gateway, "--turns", "1", "--auth-token", TOKEN, "-v"])
    assert call_command.run(args) == 0
    text = capsys.readouterr().out
    assert text.count("mark_received") == 3 and text.count("mark_echoed") == 3 and "not shown" not in text


def test_call_command_wrong_token_exit_1(threaded_gateway: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["--url", threaded_gateway, "--turns", "1", "--auth-token", "nope"])
    assert call_command.run(args) == 1
    out = capsys.readouterr().out
    assert "HTTP 403" in out and "refused: the webhook refused the call (HTTP 403): the signature does not match" in out
    assert "turns:" not in out and "closed by" not in out


def test_call_command_unsigned_exit_1_with_the_hint(
    threaded_gateway: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    assert call_command.run(parse(["--url", threaded_gateway, "--turns", "1"])) == 1
    assert capsys.readouterr().out.splitlines()[1:] == [
        "webhook: HTTP 403",
        "refused: the webhook refused the call (HTTP 403): set --auth-token (or TWILIO_AUTH_TOKEN) to the "
        "gateway's TWILIO_AUTH_TOKEN",
    ]


def test_call_command_reads_a_mulaw_wav(
    threaded_gateway: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The natural telephony file (μ-law 8 kHz, format 7), which the stdlib `wave` refuses."""
    ulaw = speech_like(400)
    fmt = struct.pack("<HHIIHHH", 7, 1, 8000, 8000, 1, 8, 0)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(ulaw)) + ulaw
    path = tmp_path / "hello.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    args = parse(["--url", threaded_gateway, "--turns", "1", "--auth-token", TOKEN, "--audio", str(path), "--json"])
    assert call_command.run(args) == 0
    assert len(orjson.loads(capsys.readouterr().out)["answer_heard_after_ms"]) == 1


def test_call_command_names_an_unsupported_wav_format(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    fmt = struct.pack("<HHIIHHH", 2, 1, 8000, 4096, 256, 4, 0)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 256) + bytes(256)
    path = tmp_path / "adpcm.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    assert call_command.run(parse(["--audio", str(path)])) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"call: cannot read {path}: Microsoft ADPCM (format 2 = 0x0002) is not supported")
    assert err.count("\n") == 1


def test_call_command_unreachable_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert call_command.run(parse(["--url", f"http://127.0.0.1:{port}", "--timeout", "5"])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreachable" in err and "Traceback" not in err


def test_call_command_bad_arguments_exit_2(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert call_command.run(parse(["--turns", "0"])) == 2
    assert call_command.run(parse(["--audio", str(tmp_path / "missing.wav")])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "Traceback" not in err


# ---------------------------------------------------------------------------------------- call output


def test_long_tokens_are_never_printed_whole() -> None:
    token = "v1.1796017241.fFt6v-wkVh1y7__h.v2k0mdpYqdMfQedSc_RFY0sLAF5yiQ3VT_s1N9WEKHo"
    r = CallReport(call_sid="CA1", stream_sid="MZ1", webhook_status=200, stream_parameters={"token": token, "to": "+1"},
                   twiml=f'<Response><Connect><Stream url="wss://x/media"><Parameter name="token" value="{token}"/>'
                   "</Stream></Connect></Response>", events=[(0.0, "start_sent", {})])
    text = call_command.format_report(r)
    assert "stream parameters: token=v1.17960…, to=+1" in text and token not in text
    dumped = orjson.dumps(call_command.report_as_json(r)).decode()
    assert token not in dumped and "v1.17960…" in dumped


def refused(status: int, body: str = "") -> CallReport:
    return CallReport(call_sid="CA1", webhook_status=status, twiml=body, errors=["call refused: ..."])


@pytest.mark.parametrize(("report", "signed", "hint"), [
    (refused(403), False, "the webhook refused the call (HTTP 403): set --auth-token (or TWILIO_AUTH_TOKEN) to "
     "the gateway's TWILIO_AUTH_TOKEN"),
    (refused(403), True, "the signature does not match; --auth-token must be the gateway's TWILIO_AUTH_TOKEN"),
    (refused(404, "404: Not Found"), False, "nothing answers a Twilio webhook at http://gw:8080/voice/twilio "
     "(HTTP 404): --url must be the gateway's base URL"),
    (refused(400, "missing CallSid\n"), False, "refused the call as malformed (HTTP 400: missing CallSid)"),
    (refused(502), False, "the gateway failed on the webhook (HTTP 502): its log says why"),
    (refused(200, "<html><body>hello</body></html>"), False,
     "the webhook answered XML that is not TwiML (<html>): is --url the voice gateway?"),
    (refused(200, "hello there"), False, "the webhook answered HTTP 200 but not with TwiML (hello there)"),
    (refused(200, "<Response><Say>Sorry, all our lines are busy.</Say><Hangup/></Response>"), False,
     "the gateway declined the call (TwiML <Say>+<Hangup>: 'Sorry, all our lines are busy.'): it is draining or "
     "at MAX_CONCURRENT_CALLS"),
    (refused(200, "<Response><Pause/></Response>"), False, "the webhook's TwiML has no <Connect><Stream url=...>"),
    (CallReport(webhook_status=200, events=[(0.0, "start_sent", {})], closed_by="gateway", close_code=1008), False,
     "the gateway refused the media stream (close code 1008)"),
    (CallReport(webhook_status=200, events=[(0.0, "start_sent", {})], closed_by="gateway", close_code=1011), False,
     "the gateway closed the media stream (code 1011) before any answer"),
])
def test_a_refused_call_says_why(report: CallReport, signed: bool, hint: str) -> None:
    got = call_command.refusal_hint(report, "http://gw:8080/", signed=signed)
    assert got is not None and hint in got
    text = call_command.format_report(report, hint=got)
    assert got in text and "closed by ?" not in text and "turns:\n" not in text


def test_an_answered_call_has_no_hint() -> None:
    r = CallReport(webhook_status=200, events=[(0.0, "start_sent", {})], closed_by="gateway", close_code=1000,
                   answer_starts_ms=[900.0])
    assert call_command.refusal_hint(r, "http://gw", signed=False) is None


@pytest.mark.parametrize(("url", "local"), [
    ("http://127.0.0.1:8080", True), ("http://localhost:8080", True), ("http://[::1]:8080", True),
    ("http://127.0.1.1", True), ("http://10.0.0.5:8080", False), ("http://gw.example.com", False),
])
async def test_ws_stream_url_warns_only_off_this_machine(url: str, local: bool) -> None:
    assert is_loopback_url(url) is local
    caller = SimulatedCaller(url)
    twiml = '<Response><Connect><Stream url="ws://gw/media/twilio"/></Connect></Response>'
    assert caller._parse_twiml(twiml) == ("ws://gw/media/twilio", {})
    warnings = [data for _, name, data in caller._events if name == "twiml_warning"]
    assert (warnings == []) is local and caller.report.errors == []
