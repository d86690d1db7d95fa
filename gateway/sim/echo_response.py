"""The echo line's responses: one response's state, its event shapes, and the task that paces its
audio deltas out, finishes it, or cancels it. Mixed into `EchoSession` (gateway.sim.echo), whose
`send`, `spawn`, `session`, `items` and friends these methods use.

A response may carry a function call (the tool script, gateway.tools.script) besides its spoken
message, before it (`call_first`) or after it, or instead of it (no message at all): its items come in
that order, each with the events a Realtime server sends for it (output_item.added, the conversation
item, function_call_arguments.delta/.done, output_item.done).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.sim import echo_schema as schema
from gateway.sim.audio import SimFormat, b64, convert, tone

log = structlog.get_logger()

TRANSCRIPT_EVERY = 5  # one transcript delta per this many audio deltas


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def chime() -> bytes:
    """The greeting: 600 ms of two tones."""
    return tone(300, 660.0) + tone(300, 880.0)


def echo_text(audio_ms: float) -> str:
    return f"<echo of {audio_ms / 1000:.2f} s of audio>"


SPOKEN_MS_PER_CHAR = 40  # a scripted line or a function output is "spoken" as a tone this long per character
SPOKEN_MIN_MS, SPOKEN_MAX_MS = 400, 3000


def spoken(text: str) -> bytes:
    """A scripted line or a function's output as audio: a tone whose length encodes the text's (μ-law)."""
    ms = max(SPOKEN_MIN_MS, min(SPOKEN_MAX_MS, SPOKEN_MS_PER_CHAR * len(text)))
    return tone(ms - ms % 20, 520.0)


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
    message: bool = True  # the response speaks (an assistant message item); False: a function call only
    message_index: int = 0  # its output_index
    function_call: dict[str, Any] | None = None  # {id, call_id, name, arguments}: a function call item too
    call_first: bool = False  # the function call comes before the message
    output: list[dict[str, Any]] | None = None  # the finished output items, in order


class ResponseMixin:
    """EchoSession's responses: start, stream, finish, cancel."""

    async def start_response(self, audio: bytes, transcript: str, input_ms: float, *,
                             audio_format: SimFormat | None = None, function_call: dict[str, Any] | None = None,
                             call_first: bool = False) -> None:
        """Answer with `audio` (in the session's input format unless `audio_format` says otherwise),
        spoken in the session's output format; with a function call too when given (no audio: only it)."""
        audio = convert(audio, audio_format or self.in_format, self.out_format)
        r = _Response(new_id("resp"), new_id("item"), audio, transcript, input_ms, self.last_item_id,
                      function_call=function_call, call_first=call_first, output=[])
        r.message = bool(audio) or function_call is None
        r.message_index = 1 if function_call is not None and call_first else 0
        self.active = r
        created = self._response_object(r, "in_progress", [])
        await self.send({"type": "response.created", "response": created})
        limits = [
            {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
            {"name": "tokens", "limit": 40000, "remaining": 35904, "reset_seconds": 6.144},
        ]
        await self.send({"type": "rate_limits.updated", "rate_limits": limits})
        if function_call is not None and (call_first or not r.message):
            await self._function_call(r, 0)
        if not r.message:
            r.task = self.spawn(self._finish_call_only(r))
            return
        r.previous_item_id = self.last_item_id
        self.items[r.item_id] = self._assistant_item(r, "in_progress", None)
        self.last_item_id = r.item_id
        self.assistant_audio_ms[r.item_id] = 0.0
        item = self._assistant_item(r, "in_progress", None)
        await self.send({"type": "response.output_item.added", "response_id": r.id,
                         "output_index": r.message_index, "item": item})
        added = "conversation.item.created" if self.dialect == "beta" else "conversation.item.added"
        await self.send({"type": added, "previous_item_id": r.previous_item_id, "item": item})
        part = {"type": "audio", "transcript": ""}
        await self.send({"type": "response.content_part.added", **self._where(r), "part": part})
        r.task = self.spawn(self._stream(r))

    def _where(self, r: _Response) -> dict[str, Any]:
        return {"response_id": r.id, "item_id": r.item_id, "output_index": r.message_index, "content_index": 0}

    async def _function_call(self, r: _Response, index: int) -> None:
        """The events of a function-call output item, arguments in one delta."""
        fc = r.function_call
        assert fc is not None
        item = {"id": fc["id"], "object": "realtime.item", "type": "function_call", "status": "in_progress",
                "call_id": fc["call_id"], "name": fc["name"], "arguments": ""}
        previous, self.last_item_id = self.last_item_id, fc["id"]
        await self.send({"type": "response.output_item.added", "response_id": r.id, "output_index": index,
                         "item": item})
        added = "conversation.item.created" if self.dialect == "beta" else "conversation.item.added"
        await self.send({"type": added, "previous_item_id": previous, "item": item})
        where = {"response_id": r.id, "item_id": fc["id"], "output_index": index, "call_id": fc["call_id"]}
        await self.send({"type": "response.function_call_arguments.delta", **where, "delta": fc["arguments"]})
        done = {"type": "response.function_call_arguments.done", **where, "arguments": fc["arguments"]}
        if self.dialect == "ga":
            done["name"] = fc["name"]  # beta's event has no name (protocol-reference.md §2.3)
        await self.send(done)
        item = {**item, "status": "completed", "arguments": fc["arguments"]}
        self.items[fc["id"]] = item
        await self.send({"type": "response.output_item.done", "response_id": r.id, "output_index": index,
                         "item": item})
        if self.dialect == "ga":
            await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        if r.output is not None:
            r.output.append(item)

    async def _finish_call_only(self, r: _Response, status: str = "completed", reason: str | None = None) -> None:
        r.finishing = True
        usage = schema.usage(r.input_ms, self.session["instructions"], 0.0, "")
        details = None if reason is None else {"type": status, "reason": reason}
        response = self._response_object(r, status, list(r.output or []), status_details=details, usage=usage)
        await self.send({"type": "response.done", "response": response})
        if self.active is r:
            self.active = None

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
            bytes_per_ms = self.out_format.bytes_per_ms
            step, audio = max(1, self._line.delta_ms) * bytes_per_ms, r.audio
            chunks = -(-len(audio) // step)
            loop = asyncio.get_running_loop()
            start = loop.time()
            period = step / bytes_per_ms / 1000 / self._line.pace if self._line.pace > 0 else 0.0
            for i in range(chunks):
                if period and i:
                    delay = start + i * period - loop.time()  # absolute deadlines: no drift
                    if delay > 0:
                        await asyncio.sleep(delay)
                piece = audio[i * step : (i + 1) * step]
                r.sent_bytes += len(piece)  # counted before the await: the frame is written at once
                self.assistant_audio_ms[r.item_id] = r.sent_bytes / bytes_per_ms
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
        await self.send({"type": "response.output_item.done", "response_id": r.id,
                         "output_index": r.message_index, "item": item})
        if self.dialect == "ga":
            await self.send(
                {"type": "conversation.item.done", "previous_item_id": r.previous_item_id, "item": item}
            )
        output = [*(r.output or []), item]
        if r.function_call is not None and not r.call_first and status == "completed":
            r.output = output
            await self._function_call(r, 1)
            output = r.output
        details = None if reason is None else {"type": status, "reason": reason}
        out_ms = r.sent_bytes / self.out_format.bytes_per_ms
        usage = schema.usage(r.input_ms, self.session["instructions"], out_ms, heard)
        response = self._response_object(r, status, output, status_details=details, usage=usage)
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
        if r.message:
            await self._finish(r, "cancelled", reason)
        else:
            await self._finish_call_only(r, "cancelled", reason)
        return True
