"""The echo line over real loopback sockets, with the `websockets` client as the peer."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.sim.audio import ALAW_FORMAT, PCM24_FORMAT, ULAW_FORMAT, SimFormat, b64, convert, silence, speech_like
from gateway.sim.echo import BETA_DISABLED_MESSAGE, EchoLine, chime

WAIT_S = 5.0  # bound on every wait for a server event
BETA_HEADERS = {"OpenAI-Beta": "realtime=v1"}
GA_UPDATE = {
    "type": "realtime",
    "model": "gpt-realtime",
    "output_modalities": ["audio"],
    "instructions": "Repeat after me.",
    "audio": {
        "input": {
            "format": {"type": "audio/pcmu"},
            "transcription": {"model": "gpt-4o-transcribe"},
            "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 500},
        },
        "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy"},
    },
}
BETA_UPDATE = {
    "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 500},
    "input_audio_format": "g711_ulaw",
    "output_audio_format": "g711_ulaw",
    "input_audio_transcription": {"model": "whisper-1"},
    "voice": "alloy",
    "instructions": "Repeat after me.",
    "modalities": ["text", "audio"],
    "temperature": 0.8,
}
UPDATES = {"ga": GA_UPDATE, "beta": BETA_UPDATE}
HEADERS: dict[str, dict[str, str]] = {"ga": {}, "beta": BETA_HEADERS}
SPEECH = speech_like(600)
TURN = silence(300) + SPEECH + silence(800)


class Peer:
    """The client end: sends events, reads server events with timeouts, keeps them all."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict] = []

    async def send(self, event: dict) -> None:
        await self.ws.send(orjson.dumps(event).decode())

    async def append(self, audio: bytes, frame_ms: int = 20, bytes_per_ms: int = 8) -> None:
        step = frame_ms * bytes_per_ms
        for i in range(0, len(audio), step):
            chunk = base64.b64encode(audio[i : i + step]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": chunk})

    async def recv(self) -> dict:
        async with asyncio.timeout(WAIT_S):
            event = orjson.loads(await self.ws.recv())
        self.events.append(event)
        return event

    async def until(self, kind: str, count: int = 1) -> list[dict]:
        """Read until the count-th event of this type; return everything read on the way."""
        got: list[dict] = []
        async with asyncio.timeout(WAIT_S):
            while count:
                got.append(await self.recv())
                count -= got[-1]["type"] == kind
        return got

    async def error(self) -> dict:
        return (await self.until("error"))[-1]["error"]


MakeLine = Callable[..., Awaitable[EchoLine]]


@pytest.fixture
async def make_line() -> AsyncIterator[Callable[..., Awaitable[EchoLine]]]:
    lines: list[EchoLine] = []

    async def make(**kwargs: Any) -> EchoLine:
        kwargs.setdefault("pace", 0)
        line = EchoLine(**kwargs)
        await line.start()
        lines.append(line)
        return line

    yield make
    for line in lines:
        await line.stop()
        for session in line.sessions:  # no task outlives its socket
            assert session.closed.is_set()
            assert not session._tasks


@asynccontextmanager
async def peer(
    line: EchoLine, path: str = "/v1/realtime?model=gpt-realtime", headers: dict[str, str] | None = None
) -> AsyncIterator[Peer]:
    url = f"ws://127.0.0.1:{line.port}{path}"
    async with connect(url, additional_headers=headers or {}, proxy=None, open_timeout=5) as ws:
        yield Peer(ws)


async def open_session(p: Peer, dialect: str) -> dict:
    created = await p.recv()
    assert created["type"] == "session.created"
    if dialect == "beta":
        assert (await p.recv())["type"] == "conversation.created"
    return created["session"]


def audio_of(events: list[dict], dialect: str) -> bytes:
    kind = "response.audio.delta" if dialect == "beta" else "response.output_audio.delta"
    return b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == kind)


def skeleton(events: list[dict]) -> list[str]:
    """Event types without the streamed deltas."""
    return [e["type"] for e in events if not e["type"].endswith(".delta")]


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_full_turn(make_line: MakeLine, dialect: str) -> None:
    line = await make_line(pace=20.0)
    async with peer(line, headers=HEADERS[dialect]) as p:
        session = await open_session(p, dialect)
        assert session["id"].startswith("sess_") and session["object"] == "realtime.session"
        assert "expires_at" in session
        await p.send({"type": "session.update", "session": UPDATES[dialect], "event_id": "evt_1"})
        updated = (await p.recv())["session"]
        assert updated["instructions"] == "Repeat after me."
        await p.append(TURN)
        events = await p.until("response.done")

    server = line.sessions[0]
    assert server.dialect == dialect
    assert server.appended_ms == pytest.approx(1700.0)
    user_item = "conversation.item.created" if dialect == "beta" else "conversation.item.added"
    user_done = [] if dialect == "beta" else ["conversation.item.done"]
    audio = "response.audio" if dialect == "beta" else "response.output_audio"
    assert skeleton(events) == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        user_item,
        *user_done,
        "conversation.item.input_audio_transcription.completed",
        "response.created",
        "rate_limits.updated",
        "response.output_item.added",
        user_item,
        "response.content_part.added",
        f"{audio}.done",
        f"{audio}_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        *user_done,
        "response.done",
    ]
    started, stopped = events[0], events[1]
    assert started["audio_start_ms"] == 0 and stopped["audio_end_ms"] == 900
    assert started["item_id"] == stopped["item_id"] == events[2]["item_id"]
    transcription = next(e for e in events if e["type"].endswith("transcription.completed"))
    assert transcription["transcript"] == "<echo of 0.90 s of audio>"
    assert transcription["usage"] == {"type": "duration", "seconds": 0.9}
    # The answer is the utterance, byte for byte, streamed in 100 ms deltas.
    assert audio_of(events, dialect) == TURN[0 : 900 * 8]
    deltas = [e for e in events if e["type"] == f"{audio}.delta"]
    assert len(deltas) == 9 and {e["output_index"] for e in deltas} == {0}
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["object"] == "realtime.response"
    assert done["id"].startswith("resp_")
    item = done["output"][0]
    assert item["role"] == "assistant" and item["status"] == "completed"
    assert item["content"][0]["type"] == ("audio" if dialect == "beta" else "output_audio")
    assert "audio" not in item["content"][0]
    transcript = "".join(e["delta"] for e in events if e["type"] == f"{audio}_transcript.delta")
    assert transcript == item["content"][0]["transcript"] == "<echo of 0.90 s of audio>"
    assert done["usage"]["output_token_details"]["audio_tokens"] == 18
    assert done["usage"]["input_token_details"]["audio_tokens"] == 18
    assert done["usage"]["total_tokens"] == done["usage"]["input_tokens"] + done["usage"]["output_tokens"]
    assert server.received[0]["event_id"] == "evt_1"
    assert len(server.received) == 1 + 1700 // 20


FORMAT_NAMES = {"ga": {"pcmu": "audio/pcmu", "pcma": "audio/pcma", "pcm": "audio/pcm"},
                "beta": {"pcmu": "g711_ulaw", "pcma": "g711_alaw", "pcm": "pcm16"}}


def format_update(dialect: str, fmt_in: SimFormat, fmt_out: SimFormat) -> dict:
    names = FORMAT_NAMES[dialect]
    if dialect == "beta":
        return {"input_audio_format": names[fmt_in.name], "output_audio_format": names[fmt_out.name]}

    def fmt(f: SimFormat) -> dict:
        return {"type": names[f.name], "rate": 24000} if f.name == "pcm" else {"type": names[f.name]}

    return {"type": "realtime", "audio": {"input": {"format": fmt(fmt_in)}, "output": {"format": fmt(fmt_out)}}}


@pytest.mark.parametrize("dialect", ["ga", "beta"])
@pytest.mark.parametrize(("fmt_in", "fmt_out"), [(ALAW_FORMAT, ALAW_FORMAT), (PCM24_FORMAT, PCM24_FORMAT),
                                                 (ULAW_FORMAT, PCM24_FORMAT)],
                         ids=["alaw", "pcm24k", "ulaw-in-pcm-out"])
async def test_a_turn_in_each_audio_format(make_line: MakeLine, dialect: str, fmt_in: SimFormat,
                                           fmt_out: SimFormat) -> None:
    """A-law and 24 kHz PCM sessions: the VAD places the turn where it does for μ-law, and the answer is
    the utterance in the output format (byte for byte when the formats are equal)."""
    line = await make_line()
    turn = convert(TURN, ULAW_FORMAT, fmt_in)
    async with peer(line, headers=HEADERS[dialect]) as p:
        await open_session(p, dialect)
        await p.send({"type": "session.update", "session": format_update(dialect, fmt_in, fmt_out)})
        await p.until("session.updated")
        await p.append(turn, bytes_per_ms=fmt_in.bytes_per_ms)
        events = await p.until("response.done")
    started, stopped = (next(e for e in events if e["type"] == f"input_audio_buffer.speech_{k}")
                        for k in ("started", "stopped"))
    assert (started["audio_start_ms"], stopped["audio_end_ms"]) == (0, 900)
    assert line.sessions[0].appended_ms == pytest.approx(len(turn) / fmt_in.bytes_per_ms)
    answer = audio_of(events, dialect)
    utterance = turn[: 900 * fmt_in.bytes_per_ms]
    if fmt_in == fmt_out:
        assert answer == utterance
    else:
        assert len(answer) == pytest.approx(900 * fmt_out.bytes_per_ms, abs=2 * fmt_out.sample_bytes)
    assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "<echo of 0.90 s of audio>"


@pytest.mark.parametrize(
    ("dialect", "update", "param"),
    [
        ("ga", {"type": "realtime", "input_audio_format": "g711_ulaw"}, "session.input_audio_format"),
        ("ga", {"type": "realtime", "modalities": ["text", "audio"]}, "session.modalities"),
        ("ga", {"type": "realtime", "temperature": 0.8}, "session.temperature"),
        (
            "ga",
            {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad", "bogus": 1}}}},
            "session.audio.input.turn_detection.bogus",
        ),
        (
            "ga",
            {"type": "realtime", "audio": {"output": {"speed": 1.0, "rate": 8000}}},
            "session.audio.output.rate",
        ),
        ("beta", {"audio": {"input": {"format": {"type": "audio/pcmu"}}}}, "session.audio"),
        ("beta", {"type": "realtime"}, "session.type"),
        ("beta", {"output_modalities": ["audio"]}, "session.output_modalities"),
        (
            "beta",
            {"turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}},
            "session.turn_detection.idle_timeout_ms",
        ),
        (
            "beta",
            {"input_audio_transcription": {"model": "whisper-1", "x": 1}},
            "session.input_audio_transcription.x",
        ),
    ],
)
async def test_unknown_field_rejects_the_whole_update(
    make_line: MakeLine, dialect: str, update: dict, param: str
) -> None:
    line = await make_line()
    async with peer(line, headers=HEADERS[dialect]) as p:
        await open_session(p, dialect)
        await p.send(
            {"type": "session.update", "session": {**update, "instructions": "X"}, "event_id": "evt_9"}
        )
        error = await p.error()
        assert error["type"] == "invalid_request_error"
        assert error["code"] == "unknown_parameter"
        assert error["param"] == param
        assert error["event_id"] == "evt_9"
        assert param in error["message"]
        assert line.sessions[0].session["instructions"] != "X"  # nothing applied
        # The session keeps working.
        await p.send({"type": "session.update", "session": UPDATES[dialect]})
        assert (await p.until("session.updated"))[-1]["session"]["instructions"] == "Repeat after me."


async def test_ga_update_needs_session_type(make_line: MakeLine) -> None:
    line = await make_line()
    async with peer(line) as p:
        await open_session(p, "ga")
        beta_shaped = {"input_audio_format": "g711_ulaw", "turn_detection": {"type": "server_vad"}}
        await p.send({"type": "session.update", "session": beta_shaped})
        error = await p.error()
        assert error["code"] == "missing_required_parameter"
        assert error["param"] == "session.type"
        assert error["event_id"] is None


@pytest.mark.parametrize(
    ("dialect", "update", "param"),
    [
        (
            "ga",
            {"type": "realtime", "audio": {"input": {"format": {"type": "audio/opus"}}}},
            "session.audio.input.format.type",
        ),
        (
            "ga",
            {"type": "realtime", "audio": {"output": {"format": {"type": "audio/pcm", "rate": 16000}}}},
            "session.audio.output.format.rate",
        ),
        ("beta", {"input_audio_format": "g722"}, "session.input_audio_format"),
        ("beta", {"output_audio_format": "audio/pcma"}, "session.output_audio_format"),
        (
            "beta",
            {"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}},
            "session.turn_detection.eagerness",
        ),
    ],
)
async def test_bad_values_are_invalid_value(
    make_line: MakeLine, dialect: str, update: dict, param: str
) -> None:
    line = await make_line()
    async with peer(line, headers=HEADERS[dialect]) as p:
        await open_session(p, dialect)
        await p.send({"type": "session.update", "session": update})
        error = await p.error()
        assert (error["code"], error["param"]) == ("invalid_value", param)


async def test_semantic_vad_eagerness_sets_the_silence(make_line: MakeLine) -> None:
    line = await make_line()
    async with peer(line) as p:
        await open_session(p, "ga")
        turn = {"type": "semantic_vad", "eagerness": "high", "create_response": False}
        await p.send(
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": turn}}},
            }
        )
        updated = (await p.until("session.updated"))[-1]["session"]
        assert updated["audio"]["input"]["turn_detection"] == {
            "type": "semantic_vad",
            "eagerness": "high",
            "create_response": False,
            "interrupt_response": True,
        }
        await p.append(silence(300) + SPEECH + silence(260))  # 250 ms of quiet ends the turn when eager
        events = await p.until("input_audio_buffer.committed")
        assert events[1]["audio_end_ms"] == 900
        await p.send({"type": "input_audio_buffer.clear"})
        assert skeleton(await p.until("input_audio_buffer.cleared"))[-1] == "input_audio_buffer.cleared"
        assert line.sessions[0].active is None  # create_response false: no answer


async def test_truncate(make_line: MakeLine) -> None:
    line = await make_line()
    async with peer(line) as p:
        await open_session(p, "ga")
        await p.send({"type": "response.create"})  # nothing said yet: the greeting chime
        events = await p.until("response.done")
        assert audio_of(events, "ga") == chime()
        item_id = events[-1]["response"]["output"][0]["id"]

        await p.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 700,
            }
        )
        error = await p.error()
        assert error["code"] is None and error["type"] == "invalid_request_error"
        assert error["message"] == "Audio content of 600ms is already shorter than 700ms"

        await p.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": 400,
            }
        )
        truncated = (await p.until("conversation.item.truncated"))[-1]
        assert (truncated["item_id"], truncated["content_index"], truncated["audio_end_ms"]) == (
            item_id,
            0,
            400,
        )

        await p.send(
            {
                "type": "conversation.item.truncate",
                "item_id": "item_nope",
                "content_index": 0,
                "audio_end_ms": 1,
            }
        )
        assert (await p.error())["code"] == "item_truncate_invalid_item_id"
    assert line.sessions[0].truncations == [
        {"item_id": item_id, "audio_end_ms": 700, "item_audio_ms": 600.0, "accepted": False},
        {"item_id": item_id, "audio_end_ms": 400, "item_audio_ms": 600.0, "accepted": True},
    ]


async def test_cancel_mid_response(make_line: MakeLine) -> None:
    line = await make_line(pace=0.5)  # 600 ms of chime in 100 ms deltas, one every 200 ms
    async with peer(line, headers=BETA_HEADERS) as p:
        await open_session(p, "beta")
        await p.send({"type": "response.create"})
        before = await p.until("response.audio.delta")
        playing = before[-1]["item_id"]  # truncating the item still being generated is fine
        await p.send(
            {"type": "conversation.item.truncate", "item_id": playing, "content_index": 0, "audio_end_ms": 50}
        )
        before += await p.until("conversation.item.truncated")
        await p.send({"type": "response.cancel", "event_id": "evt_c"})
        after = await p.until("response.done")
        events = before + after
        sent = audio_of(events, "beta")
        assert 0 < len(sent) < len(chime())
        assert skeleton(after)[-5:] == [
            "response.audio.done",
            "response.audio_transcript.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.done",
        ]
        response = after[-1]["response"]
        assert response["status"] == "cancelled"
        assert response["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
        item = response["output"][0]
        assert item["status"] == "incomplete"
        # Truncation is checked against what was actually sent.
        sent_ms = len(sent) // 8
        await p.send(
            {
                "type": "conversation.item.truncate",
                "item_id": item["id"],
                "content_index": 0,
                "audio_end_ms": sent_ms + 1,
            }
        )
        assert (await p.error())[
            "message"
        ] == f"Audio content of {sent_ms}ms is already shorter than {sent_ms + 1}ms"

        await p.send({"type": "response.cancel", "event_id": "evt_d"})
        error = await p.error()
        assert error["code"] == "response_cancel_not_active"
        assert error["message"] == "Cancellation failed: no active response found"
        assert error["event_id"] == "evt_d"


async def test_one_response_at_a_time(make_line: MakeLine) -> None:
    line = await make_line(pace=0.5)
    async with peer(line) as p:
        await open_session(p, "ga")
        await p.send({"type": "response.create"})
        await p.until("response.created")
        await p.send({"type": "response.create"})
        assert (await p.error())["code"] == "conversation_already_has_active_response"
        await p.send({"type": "response.cancel"})
        await p.until("response.done")


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_barge_in_cancels_with_turn_detected(make_line: MakeLine, dialect: str) -> None:
    line = await make_line(pace=0.5)  # the 900 ms answer takes 1.8 s to stream
    delta = "response.audio.delta" if dialect == "beta" else "response.output_audio.delta"
    async with peer(line, headers=HEADERS[dialect]) as p:
        await open_session(p, dialect)
        await p.append(silence(300) + SPEECH + silence(500))
        first = await p.until(delta)
        response_id = first[-1]["response_id"]
        await p.append(speech_like(200, seed=3))
        events = await p.until("response.done")
        kinds = skeleton(events)
        assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
        started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
        assert started["audio_start_ms"] == 1400 - 300
        done = events[-1]["response"]
        assert done["id"] == response_id
        assert done["status"] == "cancelled"
        assert done["status_details"]["reason"] == "turn_detected"
        assert line.sessions[0].active is None


async def test_malformed_input_is_answered_and_survived(
    make_line: MakeLine,
) -> None:
    line = await make_line()
    async with peer(line) as p:
        await open_session(p, "ga")
        await p.ws.send("{not json")
        assert (await p.error())["code"] == "invalid_event"
        await p.send({"event_id": "evt_1", "audio": "AAAA"})
        error = await p.error()
        assert (error["code"], error["event_id"]) == ("invalid_event", "evt_1")
        await p.send({"type": "response.explode", "event_id": "evt_2"})
        error = await p.error()
        assert (error["code"], error["param"], error["event_id"]) == ("invalid_value", "type", "evt_2")
        assert "'session.update'" in error["message"]
        await p.ws.send(b"\x00\x01binary")
        assert (await p.error())["code"] == "invalid_event"
        await p.send({"type": "input_audio_buffer.append", "audio": "***not base64***", "event_id": "evt_3"})
        error = await p.error()
        assert (error["code"], error["event_id"]) == ("invalid_value", "evt_3")
        await p.send({"type": "session.update", "session": GA_UPDATE})
        assert (await p.until("session.updated"))[-1]["type"] == "session.updated"
    server = line.sessions[0]
    assert len(server.errors_sent) == 5
    assert [e.get("type") for e in server.received] == [
        None,
        "response.explode",
        "input_audio_buffer.append",
        "session.update",
    ]


async def test_manual_turns_without_vad(make_line: MakeLine) -> None:
    line = await make_line()
    async with peer(line, headers=BETA_HEADERS) as p:
        await open_session(p, "beta")
        await p.send({"type": "session.update", "session": {"turn_detection": None}})
        assert (await p.until("session.updated"))[-1]["session"]["turn_detection"] is None
        await p.append(speech_like(50))
        await p.send({"type": "input_audio_buffer.commit", "event_id": "evt_c1"})
        error = await p.error()
        assert (error["code"], error["event_id"]) == ("input_audio_buffer_commit_empty", "evt_c1")
        said = speech_like(50) + TURN
        await p.append(TURN)
        await p.send({"type": "input_audio_buffer.commit"})
        committed = await p.until("conversation.item.created")
        assert skeleton(committed) == ["input_audio_buffer.committed", "conversation.item.created"]
        user_item = committed[-1]["item"]
        assert user_item["role"] == "user" and user_item["content"] == [
            {"type": "input_audio", "transcript": None}
        ]
        await p.send({"type": "input_audio_buffer.commit"})  # nothing new since
        assert (await p.error())["code"] == "input_audio_buffer_commit_empty"
        await p.send({"type": "response.create"})
        events = await p.until("response.done")
        assert audio_of(events, "beta") == said
        assert events[0]["response"]["status"] == "in_progress"
    assert not [e for e in line.sessions[0].sent if e["type"].startswith("input_audio_buffer.speech")]


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_conversation_item_create(make_line: MakeLine, dialect: str) -> None:
    line = await make_line()
    async with peer(line, headers=HEADERS[dialect]) as p:
        await open_session(p, dialect)
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}
        await p.send({"type": "conversation.item.create", "item": item})
        created = "conversation.item.created" if dialect == "beta" else "conversation.item.done"
        got = (await p.until(created))[-1]["item"]
        assert got["content"] == [{"type": "input_text", "text": "hello"}]
        output = {"type": "function_call_output", "call_id": "call_1", "output": "{}"}
        await p.send({"type": "conversation.item.create", "item": output})  # no such call yet: refused
        assert ((await p.error())["code"], p.events[-1]["error"]["param"]) == ("invalid_value", "item.call_id")
        call = {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": '{"q":1}'}
        await p.send({"type": "conversation.item.create", "item": call, "previous_item_id": got["id"]})
        assert (await p.until(created))[-1]["item"]["name"] == "lookup"
        await p.send({"type": "conversation.item.create", "item": output})
        assert (await p.until(created))[-1]["item"]["call_id"] == "call_1"
        spoken = speech_like(300)
        item = {"type": "message", "role": "user", "content": [{"type": "input_audio", "audio": b64(spoken)}]}
        await p.send({"type": "conversation.item.create", "item": item})
        assert (await p.until(created))[-1]["item"]["content"] == [
            {"type": "input_audio", "transcript": None}
        ]
        await p.send({"type": "response.create"})
        assert audio_of(await p.until("response.done"), dialect) == spoken  # echoes the item's audio
        bad = {"type": "message", "role": "robot", "content": [{"type": "input_text", "text": "x"}]}
        await p.send({"type": "conversation.item.create", "item": bad})
        assert ((await p.error())["code"], p.events[-1]["error"]["param"]) == ("invalid_value", "item.role")


async def test_auth(make_line: MakeLine) -> None:
    line = await make_line(api_key="sk-echo")
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}, {"api-key": "nope"}):
        with pytest.raises(InvalidStatus) as info:
            async with peer(line, headers=headers):
                pass
        assert info.value.response.status_code == 401
    assert line.sessions == []
    async with peer(line, headers={"Authorization": "Bearer sk-echo"}) as p:
        await open_session(p, "ga")
    azure = "/openai/v1/realtime?model=gpt-realtime"
    async with peer(line, path=azure, headers={"api-key": "sk-echo"}) as p:
        await open_session(p, "ga")
    assert line.sessions[0].headers["authorization"] == "Bearer sk-echo"
    assert line.sessions[1].headers["Api-Key"] == "sk-echo"
    assert line.sessions[1].query == {"model": "gpt-realtime"}


async def test_azure_preview_path_speaks_beta(make_line: MakeLine) -> None:
    line = await make_line()
    path = "/openai/realtime?api-version=2025-04-01-preview&deployment=gpt-4o-realtime-preview"
    async with peer(line, path=path) as p:
        session = await open_session(p, "beta")
        assert session["input_audio_format"] == "g711_ulaw" and "audio" not in session
        assert session["model"] == "gpt-4o-realtime-preview"
        await p.send({"type": "session.update", "session": {"type": "realtime"}})
        assert (await p.error())["param"] == "session.type"
    assert line.sessions[0].dialect == "beta"
    assert line.sessions[0].query["api-version"] == "2025-04-01-preview"


async def test_reject_beta_on_openai_path(make_line: MakeLine) -> None:
    line = await make_line(reject_beta_on_openai_path=True)
    async with peer(line, headers=BETA_HEADERS) as p:
        error = await p.error()
        assert error["code"] == "beta_api_shape_disabled"
        assert error["message"] == BETA_DISABLED_MESSAGE
        with pytest.raises(ConnectionClosed):
            await p.recv()
        assert p.ws.close_code == 4000
    async with peer(line) as p:  # GA on the same line is fine
        await open_session(p, "ga")
    session = await line.wait_for_session(0)
    await asyncio.wait_for(session.closed.wait(), 5)
    assert session.close_code == 4000


async def test_session_expiry(make_line: MakeLine) -> None:
    line = await make_line(max_session_s=0.3)
    async with peer(line) as p:
        await open_session(p, "ga")
        error = await p.error()
        assert error["code"] == "session_expired"
        assert error["message"] == "Your session hit the maximum duration of 0.005 minutes."
        with pytest.raises(ConnectionClosed):
            await p.recv()
        assert p.ws.close_code == 1001


async def test_server_side_close_mid_response(make_line: MakeLine) -> None:
    line = await make_line(pace=0.5)
    async with peer(line) as p:
        await open_session(p, "ga")
        await p.send({"type": "response.create"})
        await p.until("response.output_audio.delta")
        session = await line.wait_for_session(0)
        await session.close(1011, "upstream drops")
        with pytest.raises(ConnectionClosed):
            await p.until("response.done")
        assert p.ws.close_code == 1011
    assert session.closed.is_set() and session.close_code == 1011
    assert not session._tasks and session.active is None


async def test_wait_for_event_and_client_close(make_line: MakeLine) -> None:
    line = await make_line()
    async with peer(line) as p:
        await open_session(p, "ga")
        session = await line.wait_for_session(0)
        await p.append(silence(100))
        last = await session.wait_for_event("input_audio_buffer.append", count=5)
        assert last is session.received[4]
        with pytest.raises(TimeoutError):
            await session.wait_for_event("response.create", timeout=0.05)
        await p.send({"type": "session.update", "session": {"type": "realtime", "instructions": "hi"}})
        await session.wait_for_event("session.update")
        assert session.session["instructions"] == "hi"  # handled by the time the wait returns
        pending = asyncio.ensure_future(session.wait_for_event("response.create"))
        await p.ws.close(1000)
        with pytest.raises(TimeoutError, match="closed"):
            await pending
    await asyncio.wait_for(session.closed.wait(), 5)
    assert session.close_code == 1000
    assert session.appended_ms == 100
    with pytest.raises(TimeoutError):
        await line.wait_for_session(1, timeout=0.05)


async def test_stop_closes_live_sessions(make_line: MakeLine) -> None:
    line = await make_line(pace=0.5)
    async with peer(line) as p, peer(line, headers=BETA_HEADERS) as q:
        await open_session(p, "ga")
        await open_session(q, "beta")
        await p.send({"type": "response.create"})
        await p.until("response.output_audio.delta")
        await line.stop()
        for client in (p, q):
            with pytest.raises(ConnectionClosed):
                await client.until("response.done")
            assert client.ws.close_code == 1001
    for session in line.sessions:
        assert session.closed.is_set() and not session._tasks


async def test_url_and_app(make_line: MakeLine) -> None:
    line = await make_line()
    assert line.port > 0
    assert line.url == f"ws://127.0.0.1:{line.port}/v1/realtime"
    assert {r.resource.canonical for r in line.make_app().router.routes()} >= {
        "/v1/realtime",
        "/openai/v1/realtime",
        "/openai/realtime",
    }
