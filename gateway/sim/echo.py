"""The echo line: an offline Realtime-protocol server (GA and beta dialects) that answers every caller
utterance by playing it back as the response audio.

It is the gateway's upstream when no API key is configured, the far end of the end-to-end tests and
of the load bench, so the per-append path stays in C (orjson, base64, audioop) and every session
runs at most one pacing task, cancelled and awaited with its socket.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiohttp import WSMsgType, web

from gateway.sim import echo_schema as schema
from gateway.sim.audio import BYTES_PER_MS, b64, tone
from gateway.sim.vad import EnergyVad

log = structlog.get_logger()

BETA_DISABLED_MESSAGE = (
    "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # the service takes up to 15 MiB per append
TRANSCRIPT_EVERY = 5  # one transcript delta per this many audio deltas
CLOSE_WAIT_S = 10.0


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def chime() -> bytes:
    """The greeting: 600 ms of two tones."""
    return tone(300, 660.0) + tone(300, 880.0)


def echo_text(audio_bytes: int) -> str:
    return f"<echo of {audio_bytes / BYTES_PER_MS / 1000:.2f} s of audio>"


def _is_beta(request: web.Request) -> bool:
    if "realtime=v1" in request.headers.get("OpenAI-Beta", ""):
        return True
    return "openai-beta.realtime-v1" in request.headers.get("Sec-WebSocket-Protocol", "")


class HeaderDict(dict[str, str]):
    """Handshake headers; lookups ignore case like HTTP does."""

    def __init__(self, items: Any) -> None:
        super().__init__((k.lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


@dataclass(slots=True, eq=False)
class _Response:
    id: str
    item_id: str
    audio: bytes
    transcript: str
    input_ms: float
    previous_item_id: str | None
    task: asyncio.Task[None] | None = None
    sent_bytes: int = 0
    transcript_sent: int = 0  # characters of the transcript already sent as deltas
    finishing: bool = False  # every delta is out; the closing events are on their way


class EchoSession:
    """One Realtime socket. The receive loop handles client events in order; a response's audio is
    paced by its own task."""

    def __init__(self, line: EchoLine, ws: web.WebSocketResponse, request: web.Request, dialect: str) -> None:
        self.dialect = dialect
        self.headers: dict[str, str] = HeaderDict(request.headers.items())
        self.query: dict[str, str] = dict(request.query)
        self.received: list[dict] = []
        self.sent: list[dict] = []
        self.truncations: list[dict] = []
        self.errors_sent: list[dict] = []
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.appended_ms: float = 0.0
        self._ws = ws
        self._line = line
        self._names = schema.NAMES[dialect]
        self._delta_bytes = max(1, line.delta_ms) * BYTES_PER_MS
        model = self.query.get("model") or self.query.get("deployment") or "gpt-realtime"
        expires = int(time.time()) + int(line.max_session_s or 3600)
        self.session: dict[str, Any] = schema.default_session(
            dialect, session_id=new_id("sess"), model=model, expires_at=expires
        )
        self.conversation_id = new_id("conv")
        self.vad = EnergyVad()
        self.vad.retain_from_ms = 0.0  # the uncommitted input buffer is kept for manual commits
        self.turn: schema.TurnConfig | None = None
        self.apply_turn_detection()
        self.speech_item_id: str | None = None
        self.speech_start_ms = 0
        self.last_commit_ms = 0.0
        self.items: dict[str, dict] = {}  # the conversation, in order
        self.last_item_id: str | None = None
        self.assistant_audio_ms: dict[str, float] = {}  # generated so far, per assistant item
        self.last_user_audio = b""
        self.audio_out = False
        self.active: _Response | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._close_task: asyncio.Task[Any] | None = None
        self._seq = 0
        self._tag = secrets.token_hex(3)
        self._counts: dict[str, int] = {}
        self._last: dict[str, dict] = {}
        self._waiters: list[tuple[str, int, asyncio.Future[dict]]] = []
        self.handlers = {
            "session.update": self._on_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "conversation.item.create": self._on_item_create,
            "conversation.item.truncate": self._on_truncate,
            "conversation.item.delete": self._on_item_delete,
            "conversation.item.retrieve": self._on_item_retrieve,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
        }

    # ---- test-facing API ----

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Server-initiated close; returns once the session is torn down."""
        await self.close_socket(code, reason)
        try:
            await asyncio.wait_for(self.closed.wait(), CLOSE_WAIT_S)
        except TimeoutError:
            log.warning("echo session teardown slow", code=code)

    async def send_error(self, code: str | None, message: str, type: str = "invalid_request_error") -> None:
        await self.error(code, message, type=type)

    async def wait_for_event(self, type: str, timeout: float = 5.0, count: int = 1) -> dict:  # noqa: ASYNC109
        """Wait until `count` client events of this type were received and handled; return the
        count-th one. TimeoutError on timeout, or once the session closes without them."""
        if self._counts.get(type, 0) >= count:
            return self._last[type]
        if self.closed.is_set():
            raise TimeoutError(f"{self._counts.get(type, 0)}/{count} {type!r} events; the session is closed")
        fut: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        waiter = (type, count, fut)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            if fut.done():  # the session closed first
                raise
            have = self._counts.get(type, 0)
            raise TimeoutError(f"{have}/{count} {type!r} events received within {timeout}s") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    # ---- plumbing ----

    async def send(self, event: dict) -> bool:
        """Send one server event (recorded in `sent`); False once the socket is gone."""
        if self._ws.closed:
            return False
        self._seq += 1
        event["event_id"] = f"event_{self._tag}{self._seq:05d}"
        data = orjson.dumps(event)
        if self._line.record_audio_events or event["type"] != self._names["audio_delta"]:
            self.sent.append(event)
        if event["type"] == "error":
            self.errors_sent.append(event)
        try:
            await self._ws.send_frame(data, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def error(
        self,
        code: str | None,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        event_id: str | None = None,
    ) -> None:
        body = {"type": type, "code": code, "message": message, "param": param, "event_id": event_id}
        await self.send({"type": "error", "error": body})

    async def close_socket(self, code: int, reason: str) -> None:
        if self.close_code is None:
            self.close_code = code
        if self._close_task is None:
            message = reason.encode()[:123]
            self._close_task = asyncio.ensure_future(self._ws.close(code=code, message=message))
        await asyncio.shield(self._close_task)

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _note_received(self, event: dict, kind: str) -> None:
        count = self._counts[kind] = self._counts.get(kind, 0) + 1
        self._last[kind] = event
        for waiter in self._waiters:
            if waiter[0] == kind and count >= waiter[1] and not waiter[2].done():
                waiter[2].set_result(event)

    # ---- lifecycle ----

    async def run(self, reject_beta: bool) -> None:
        try:
            if reject_beta:
                await self.error("beta_api_shape_disabled", BETA_DISABLED_MESSAGE)
                await self.close_socket(4000, "invalid_request_error.beta_api_shape_disabled")
                return
            await self.send({"type": "session.created", "session": self.session})
            if self.dialect == "beta":
                conversation = {"id": self.conversation_id, "object": "realtime.conversation"}
                await self.send({"type": "conversation.created", "conversation": conversation})
            if self._line.max_session_s is not None:
                self.spawn(self._expire(self._line.max_session_s))
            async for msg in self._ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type is WSMsgType.BINARY:
                    await self.error(
                        "invalid_event", "Binary frames are not supported; send JSON text frames."
                    )
                else:
                    break
        finally:
            await self._teardown()

    async def _on_text(self, data: bytes | str) -> None:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            await self.error("invalid_event", f"Invalid JSON in client event: {exc}")
            return
        if not isinstance(event, dict):
            await self.error("invalid_event", "A client event must be a JSON object.")
            return
        event_id = event.get("event_id")
        event_id = event_id if isinstance(event_id, str) else None
        kind = event.get("type")
        if kind != "input_audio_buffer.append" or self._line.record_audio_events:
            self.received.append(event)
        if not isinstance(kind, str):
            await self.error(
                "invalid_event", "Missing required parameter: 'type'.", param="type", event_id=event_id
            )
            self._note_received(event, "")
            return
        try:
            handler = self.handlers.get(kind)
            if handler is None:
                await self.unknown_type(kind, event_id)
            else:
                await handler(event, event_id)
        except Exception:
            log.exception("echo line failed on a client event", type=kind)
            await self.error(
                None, "The server had an error while processing your request.", type="server_error"
            )
        finally:
            self._note_received(event, kind)  # after handling: a waiter sees the event's effects

    async def _expire(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        minutes = f"{seconds / 60:g}"
        await self.error("session_expired", f"Your session hit the maximum duration of {minutes} minutes.")
        await self.close_socket(1001, "session_expired")

    async def _teardown(self) -> None:
        if self.close_code is None:
            self.close_code = self._ws.close_code
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._close_task is not None:
            await asyncio.wait([self._close_task], timeout=CLOSE_WAIT_S)
        self.active = None
        self.closed.set()
        for _, _, fut in self._waiters:
            if not fut.done():
                fut.set_exception(TimeoutError("the echo session closed first"))

    # ---- responses ----

    async def start_response(self, audio: bytes, transcript: str, input_ms: float) -> None:
        r = _Response(new_id("resp"), new_id("item"), audio, transcript, input_ms, self.last_item_id)
        self.active = r
        self.items[r.item_id] = self._assistant_item(r, "in_progress", None)
        self.last_item_id = r.item_id
        self.assistant_audio_ms[r.item_id] = 0.0
        created = self._response_object(r, "in_progress", [])
        await self.send({"type": "response.created", "response": created})
        limits = [
            {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
            {"name": "tokens", "limit": 40000, "remaining": 35904, "reset_seconds": 6.144},
        ]
        await self.send({"type": "rate_limits.updated", "rate_limits": limits})
        item = self._assistant_item(r, "in_progress", None)
        await self.send(
            {"type": "response.output_item.added", "response_id": r.id, "output_index": 0, "item": item}
        )
        added = "conversation.item.created" if self.dialect == "beta" else "conversation.item.added"
        await self.send({"type": added, "previous_item_id": r.previous_item_id, "item": item})
        part = {"type": "audio", "transcript": ""}
        await self.send({"type": "response.content_part.added", **self._where(r), "part": part})
        r.task = self.spawn(self._stream(r))

    def _where(self, r: _Response) -> dict[str, Any]:
        return {"response_id": r.id, "item_id": r.item_id, "output_index": 0, "content_index": 0}

    def _assistant_item(self, r: _Response, status: str, transcript: str | None) -> dict[str, Any]:
        content = (
            [] if transcript is None else [{"type": self._names["assistant_audio"], "transcript": transcript}]
        )
        return {
            "id": r.item_id,
            "object": "realtime.item",
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": content,
        }

    def _response_object(self, r: _Response, status: str, output: list, **extra: Any) -> dict[str, Any]:
        return schema.response_object(
            self.dialect,
            self.session,
            response_id=r.id,
            conversation_id=self.conversation_id,
            status=status,
            output=output,
            **extra,
        )

    async def _stream(self, r: _Response) -> None:
        try:
            step, audio = self._delta_bytes, r.audio
            chunks = -(-len(audio) // step)
            loop = asyncio.get_running_loop()
            start = loop.time()
            period = step / BYTES_PER_MS / 1000 / self._line.pace if self._line.pace > 0 else 0.0
            for i in range(chunks):
                if period and i:
                    delay = start + i * period - loop.time()  # absolute deadlines: no drift
                    if delay > 0:
                        await asyncio.sleep(delay)
                piece = audio[i * step : (i + 1) * step]
                r.sent_bytes += len(piece)  # counted before the await: the frame is written at once
                self.assistant_audio_ms[r.item_id] = r.sent_bytes / BYTES_PER_MS
                self.audio_out = True
                await self.send({"type": self._names["audio_delta"], **self._where(r), "delta": b64(piece)})
                if i % TRANSCRIPT_EVERY == 0:
                    await self._transcript_delta(r, (i + 1) / chunks)
            r.finishing = True
            await self._transcript_delta(r, 1.0)
            await self._finish(r, "completed", None)
        except Exception:
            log.exception("echo line response failed", response_id=r.id)
            if self.active is r:
                self.active = None

    async def _transcript_delta(self, r: _Response, fraction: float) -> None:
        due = round(len(r.transcript) * min(1.0, fraction))
        if due > r.transcript_sent:
            piece = r.transcript[r.transcript_sent : due]
            r.transcript_sent = due
            await self.send({"type": self._names["transcript_delta"], **self._where(r), "delta": piece})

    async def _finish(self, r: _Response, status: str, reason: str | None) -> None:
        heard = r.transcript[: r.transcript_sent]
        where = self._where(r)
        await self.send({"type": self._names["audio_done"], **where})
        await self.send({"type": self._names["transcript_done"], **where, "transcript": heard})
        part = {"type": "audio", "transcript": heard}
        await self.send({"type": "response.content_part.done", **where, "part": part})
        item = self._assistant_item(r, "completed" if status == "completed" else "incomplete", heard)
        self.items[r.item_id] = item
        await self.send(
            {"type": "response.output_item.done", "response_id": r.id, "output_index": 0, "item": item}
        )
        if self.dialect == "ga":
            await self.send(
                {"type": "conversation.item.done", "previous_item_id": r.previous_item_id, "item": item}
            )
        details = None if reason is None else {"type": status, "reason": reason}
        usage = schema.usage(r.input_ms, self.session["instructions"], r.sent_bytes / BYTES_PER_MS, heard)
        response = self._response_object(r, status, [item], status_details=details, usage=usage)
        await self.send({"type": "response.done", "response": response})
        if self.active is r:
            self.active = None

    async def cancel_active(self, reason: str) -> bool:
        """Cancel the response in progress; False if there is none (or it finished on its own)."""
        r = self.active
        if r is None:
            return False
        if r.task is not None:
            if not r.finishing:
                r.task.cancel()
            await asyncio.wait([r.task])
            if not r.task.cancelled():
                return False
        await self._finish(r, "cancelled", reason)
        return True

    # ---- client events ----

    async def unknown_type(self, kind: str, event_id: str | None) -> None:
        shown = ", ".join(f"'{k}'" for k in list(self.handlers)[:6])
        message = f"Invalid value: '{kind}'. Supported values are: {shown}, and more."
        await self.error("invalid_value", message, param="type", event_id=event_id)

    def apply_turn_detection(self) -> None:
        before = self.turn
        self.turn = schema.turn_config(self.session, self.dialect)
        if self.turn is not None:
            self.vad.configure(
                self.turn.threshold, self.turn.prefix_padding_ms, self.turn.silence_duration_ms
            )
        if (before is None) != (self.turn is None):
            self.vad.reset_speech()
            self.speech_item_id = None

    async def _on_session_update(self, event: dict, event_id: str | None) -> None:
        update = event.get("session")
        if update is None:
            await self.error(
                "missing_required_parameter",
                "Missing required parameter: 'session'.",
                param="session",
                event_id=event_id,
            )
            return
        try:
            schema.validate_update(update, self.dialect)
        except schema.SchemaError as exc:
            await self.error(exc.code, exc.message, param=exc.param, event_id=event_id)
            return
        voice = schema.voice_in_update(update, self.dialect)
        if voice is not None and self.audio_out and voice != schema.voice_of(self.session, self.dialect):
            param = "session.voice" if self.dialect == "beta" else "session.audio.output.voice"
            message = "Cannot update a conversation's voice if assistant audio is present."
            await self.error("cannot_update_voice", message, param=param, event_id=event_id)
            return
        self.session = schema.merge_session(self.session, update, self.dialect)
        self.apply_turn_detection()
        await self.send({"type": "session.updated", "session": self.session})

    async def _on_append(self, event: dict, event_id: str | None) -> None:
        audio = event.get("audio")
        if not isinstance(audio, str):
            await self.error(
                "missing_required_parameter" if audio is None else "invalid_type",
                "Missing required parameter: 'audio'."
                if audio is None
                else "'audio' must be a base64 string.",
                param="audio",
                event_id=event_id,
            )
            return
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            await self.error(
                "invalid_value",
                "Invalid 'audio'. Expected base64-encoded audio.",
                param="audio",
                event_id=event_id,
            )
            return
        self.appended_ms += len(data) / BYTES_PER_MS
        decisions = self.vad.feed(data)
        if self.turn is None:
            return
        for decision in decisions:
            if decision.kind == "start":
                await self._speech_started(decision.ms)
            else:
                await self._speech_stopped(decision.ms, decision.at_ms)

    async def _speech_started(self, audio_start_ms: int) -> None:
        self.speech_item_id = new_id("item")
        self.speech_start_ms = audio_start_ms
        await self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": self.speech_item_id,
            }
        )
        if self.active is not None and self.turn is not None and self.turn.interrupt_response:
            await self.cancel_active("turn_detected")

    async def _speech_stopped(self, audio_end_ms: int, at_ms: int) -> None:
        item_id = self.speech_item_id or new_id("item")
        self.speech_item_id = None
        await self.send(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": audio_end_ms, "item_id": item_id}
        )
        audio = self.vad.audio(self.speech_start_ms, audio_end_ms)
        await self._commit(item_id, audio, at_ms)
        if self.turn is not None and self.turn.create_response and self.active is None:
            await self.start_response(audio, echo_text(len(audio)), len(audio) / BYTES_PER_MS)

    async def _commit(self, item_id: str, audio: bytes, commit_at_ms: float) -> None:
        previous = self.last_item_id
        self.last_commit_ms = commit_at_ms
        self.vad.retain_from_ms = commit_at_ms
        if audio:
            self.last_user_audio = audio
        await self.send(
            {"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id}
        )
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        await self._add_item(item, previous)
        if schema.transcription_enabled(self.session, self.dialect):
            seconds = round(len(audio) / BYTES_PER_MS / 1000, 3)
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": echo_text(len(audio)),
                    "usage": {"type": "duration", "seconds": seconds},
                }
            )

    async def _add_item(self, item: dict, previous: str | None) -> None:
        self.items[item["id"]] = item
        self.last_item_id = item["id"]
        if self.dialect == "beta":
            await self.send({"type": "conversation.item.created", "previous_item_id": previous, "item": item})
        else:
            await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
            await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})

    async def _on_commit(self, event: dict, event_id: str | None) -> None:
        now = self.vad.position_ms
        audio = self.vad.audio(self.last_commit_ms, now)
        ms = len(audio) / BYTES_PER_MS
        if ms < 100:
            message = (
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
                f"but buffer only has {ms:.2f}ms of audio."
            )
            await self.error("input_audio_buffer_commit_empty", message, event_id=event_id)
            return
        item_id = self.speech_item_id or new_id("item")
        self.speech_item_id = None
        self.vad.reset_speech()
        await self._commit(item_id, audio, now)

    async def _on_clear(self, event: dict, event_id: str | None) -> None:
        self.last_commit_ms = self.vad.position_ms
        self.vad.retain_from_ms = self.last_commit_ms
        self.vad.reset_speech()
        self.speech_item_id = None
        await self.send({"type": "input_audio_buffer.cleared"})

    async def _on_response_create(self, event: dict, event_id: str | None) -> None:
        if self.active is not None:
            message = (
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one."
            )
            await self.error("conversation_already_has_active_response", message, event_id=event_id)
            return
        overrides = event.get("response")
        if overrides is not None and not isinstance(overrides, dict):
            await self.error(
                "invalid_type", "'response' must be an object.", param="response", event_id=event_id
            )
            return
        if self.last_user_audio:
            audio = self.last_user_audio
            await self.start_response(audio, echo_text(len(audio)), len(audio) / BYTES_PER_MS)
        else:
            await self.start_response(chime(), "<greeting chime>", 0.0)

    async def _on_response_cancel(self, event: dict, event_id: str | None) -> None:
        wanted = event.get("response_id")
        if self.active is not None and wanted not in (None, self.active.id):
            await self.error(
                "response_cancel_not_active",
                f"Cancellation failed: no active response found with id '{wanted}'.",
                param="response_id",
                event_id=event_id,
            )
            return
        if not await self.cancel_active("client_cancelled"):
            message = "Cancellation failed: no active response found"
            await self.error("response_cancel_not_active", message, event_id=event_id)

    async def _on_truncate(self, event: dict, event_id: str | None) -> None:
        item_id = event.get("item_id")
        end = event.get("audio_end_ms")
        if not isinstance(item_id, str) or item_id not in self.assistant_audio_ms:
            message = f"Invalid 'item_id': no assistant audio item with id '{item_id}' in the conversation."
            await self.error("item_truncate_invalid_item_id", message, param="item_id", event_id=event_id)
            return
        if isinstance(end, bool) or not isinstance(end, int) or end < 0:
            message = "Invalid 'audio_end_ms': expected a non-negative integer."
            await self.error("invalid_value", message, param="audio_end_ms", event_id=event_id)
            return
        content_index = event.get("content_index", 0)
        if content_index != 0:
            message = f"Invalid 'content_index': {content_index!r}; the item has one audio part (0)."
            await self.error("invalid_value", message, param="content_index", event_id=event_id)
            return
        item_ms = self.assistant_audio_ms[item_id]
        shown_ms = int(item_ms) if item_ms == int(item_ms) else round(item_ms, 3)
        accepted = end <= item_ms
        self.truncations.append(
            {"item_id": item_id, "audio_end_ms": end, "item_audio_ms": item_ms, "accepted": accepted}
        )
        if not accepted:
            message = f"Audio content of {shown_ms}ms is already shorter than {end}ms"
            await self.error(None, message, event_id=event_id)
            return
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": end,
            }
        )

    async def _on_item_create(self, event: dict, event_id: str | None) -> None:
        try:
            item, audio = schema.client_item(event.get("item"), self.items, new_id("item"))
        except schema.SchemaError as exc:
            await self.error(exc.code, exc.message, param=exc.param, event_id=event_id)
            return
        self.last_user_audio = audio or self.last_user_audio
        previous = event.get("previous_item_id")
        previous = previous if isinstance(previous, str) else self.last_item_id
        await self._add_item(item, previous)

    async def _on_item_delete(self, event: dict, event_id: str | None) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or item_id not in self.items:
            message = f"Invalid 'item_id': no item with id '{item_id}' in the conversation."
            await self.error("item_delete_invalid_item_id", message, param="item_id", event_id=event_id)
            return
        del self.items[item_id]
        if self.last_item_id == item_id:
            self.last_item_id = next(reversed(self.items), None)
        await self.send({"type": "conversation.item.deleted", "item_id": item_id})

    async def _on_item_retrieve(self, event: dict, event_id: str | None) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or item_id not in self.items:
            message = f"Invalid 'item_id': no item with id '{item_id}' in the conversation."
            await self.error("item_retrieve_invalid_item_id", message, param="item_id", event_id=event_id)
            return
        await self.send({"type": "conversation.item.retrieved", "item": self.items[item_id]})


class EchoLine:
    """The server: routes, auth, dialect choice; every accepted socket becomes an EchoSession."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        pace: float = 2.0,
        delta_ms: int = 100,
        reject_beta_on_openai_path: bool = False,
        max_session_s: float | None = None,
        record_audio_events: bool = True,
    ) -> None:
        self.host = host
        self.api_key = api_key
        self.pace = pace
        self.delta_ms = delta_ms
        self.reject_beta_on_openai_path = reject_beta_on_openai_path
        self.max_session_s = max_session_s
        self.record_audio_events = record_audio_events  # False keeps appends/deltas out of the logs (bench)
        self.sessions: list[EchoSession] = []
        self._port = port
        self._runner: web.AppRunner | None = None
        self._session_added = asyncio.Event()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"ws://{host}:{self._port}/v1/realtime"

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/realtime", self._openai)
        app.router.add_get("/openai/v1/realtime", self._azure_ga)
        app.router.add_get("/openai/realtime", self._azure_preview)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._port))
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        self._port = sock.getsockname()[1]

    async def stop(self) -> None:
        await self._close_sessions()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for_session(self, index: int = 0, timeout: float = 5.0) -> EchoSession:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while len(self.sessions) <= index:
                await self._session_added.wait()
        return self.sessions[index]

    async def _close_sessions(self) -> None:
        live = [s for s in self.sessions if not s.closed.is_set()]
        await asyncio.gather(*(s.close(1001, "server shutdown") for s in live), return_exceptions=True)

    async def _on_shutdown(self, app: web.Application) -> None:
        await self._close_sessions()

    def _authorized(self, request: web.Request) -> bool:
        if self.api_key is None:
            return True
        headers = request.headers
        if headers.get("Authorization") == f"Bearer {self.api_key}" or headers.get("api-key") == self.api_key:
            return True
        offered = [p.strip() for p in headers.get("Sec-WebSocket-Protocol", "").split(",")]
        return f"openai-insecure-api-key.{self.api_key}" in offered

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        beta = _is_beta(request)
        return await self._accept(request, "beta" if beta else "ga", beta and self.reject_beta_on_openai_path)

    async def _azure_ga(self, request: web.Request) -> web.StreamResponse:
        return await self._accept(request, "ga", False)

    async def _azure_preview(self, request: web.Request) -> web.StreamResponse:
        return await self._accept(request, "beta", False)

    async def _accept(self, request: web.Request, dialect: str, reject_beta: bool) -> web.StreamResponse:
        if not self._authorized(request):
            body = {"type": "invalid_request_error", "code": "invalid_api_key", "param": None}
            body["message"] = "Incorrect API key provided."
            return web.json_response({"error": body}, status=401)
        ws = web.WebSocketResponse(
            compress=False, max_msg_size=MAX_MESSAGE_BYTES, protocols=("realtime",), decode_text=False
        )
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text="WebSocket upgrade required")
        await ws.prepare(request)
        session = EchoSession(self, ws, request, dialect)
        self.sessions.append(session)
        added, self._session_added = self._session_added, asyncio.Event()
        added.set()
        await session.run(reject_beta)
        return ws


async def serve_forever(host: str, port: int, **kwargs: Any) -> None:
    """Run an echo line until cancelled (the `python -m gateway echo` command)."""
    line = EchoLine(host=host, port=port, **kwargs)
    await line.start()
    structlog.get_logger().info("echo line listening", url=line.url)
    try:
        await asyncio.Event().wait()
    finally:
        await line.stop()
