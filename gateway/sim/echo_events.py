"""The echo line's client-event handlers: session updates, the input audio buffer with its
turn detection, conversation items, and response create/cancel. Mixed into `EchoSession`
(gateway.sim.echo), which dispatches to them through its `handlers` table.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

from gateway.sim import echo_schema as schema
from gateway.sim.audio import ULAW_FORMAT
from gateway.sim.echo_response import chime, echo_text, new_id, spoken
from gateway.sim.vad import VadEvent
from gateway.tools.script import ScriptedTurn


def _idle_line(overrides: dict | None) -> str | None:
    """A response the gateway asks for on a silent line (metadata purpose idle_*): the echo line says what it
    was asked to, the last paragraph of the instructions (the gateway puts the agent's own before it). The
    agent's greeting (purpose greeting): the line after the instructions' colon, so that two agents'
    greetings sound different (a tone as long as the text)."""
    metadata = overrides.get("metadata") if overrides else None
    purpose = metadata.get("purpose") if isinstance(metadata, dict) else None
    instructions = overrides.get("instructions") if overrides else None
    if isinstance(purpose, str) and purpose.startswith("idle_") and isinstance(instructions, str):
        return instructions.rsplit("\n\n", 1)[-1].strip() or None
    if purpose == "greeting" and isinstance(instructions, str) and ": " in instructions:
        return instructions.split(": ", 1)[1].strip() or None
    return None


def _user_text(item: dict | None) -> str | None:
    """The text of a user message of text (keypad input, as the gateway words it), if that is `item`."""
    if item is None or item.get("type") != "message" or item.get("role") != "user":
        return None
    texts = [p.get("text") for p in item.get("content") or [] if p.get("type") == "input_text"]
    return " ".join(t for t in texts if isinstance(t, str)) or None


class ClientEventsMixin:
    """EchoSession's handlers for client events, and the turn detection that drives them."""

    def input_ms(self, audio: bytes) -> float:
        """How long `audio` in the session's input format lasts."""
        return len(audio) / self.in_format.bytes_per_ms

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
        if self._line.session_update_delay_ms:
            await asyncio.sleep(self._line.session_update_delay_ms / 1000.0)
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
        self.in_format, self.out_format = schema.audio_formats(self.session, self.dialect)
        self.vad.set_format(self.in_format)
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
        await self.act_on(self.take_audio(data))

    def take_audio(self, data: bytes) -> list[VadEvent]:
        """Add decoded audio to the input buffer; return the turn decisions it completes (none without
        turn detection). Synchronous, so a fast path can call it without a task."""
        self.appended_ms += len(data) / self.in_format.bytes_per_ms
        decisions = self.vad.feed(data)
        return decisions if self.turn is not None else []

    async def act_on(self, decisions: list[VadEvent]) -> None:
        """Send what the turn decisions of `take_audio` mean: speech started or stopped."""
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
            self.user_turns += 1
            script = self._line.tool_script
            scripted = script.turns.get(self.user_turns) if script is not None else None
            if scripted is not None:
                await self.start_scripted(scripted, self.input_ms(audio))
            else:
                await self.start_response(audio, echo_text(self.input_ms(audio)), self.input_ms(audio))

    async def start_scripted(self, turn: ScriptedTurn, input_ms: float) -> None:
        """A turn of the tool script: its line (a tone as long as the text) and/or its function call."""
        call = None
        if turn.call:
            call = {"id": new_id("item"), "call_id": new_id("call"), "name": turn.call, "arguments": turn.arguments}
        audio = spoken(turn.say) if turn.say else b""
        await self.start_response(audio, turn.say or "", input_ms, audio_format=ULAW_FORMAT, function_call=call,
                                  call_first=turn.call_first)

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
            seconds = round(self.input_ms(audio) / 1000, 3)
            await self.send(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": echo_text(self.input_ms(audio)),
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
        ms = self.input_ms(audio)
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
        last = self.items.get(self.last_item_id) if self.last_item_id else None
        said = _idle_line(overrides) or _user_text(last)
        if said is not None:  # an idle check-in or goodbye, or keypad input: "spoken" back as its transcript
            await self.start_response(spoken(said), said[:200], 0.0, audio_format=ULAW_FORMAT)
        elif last is not None and last.get("type") == "function_call_output":
            output = str(last.get("output", ""))  # the function's output "spoken" back, as its transcript
            await self.start_response(spoken(output), output[:200], 0.0, audio_format=ULAW_FORMAT)
        elif self.last_user_audio:
            audio = self.last_user_audio
            await self.start_response(audio, echo_text(self.input_ms(audio)), self.input_ms(audio))
        else:
            await self.start_response(chime(), "<greeting chime>", 0.0, audio_format=ULAW_FORMAT)

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
        if item["type"] == "function_call_output" and not any(
                i.get("type") == "function_call" and i.get("call_id") == item["call_id"] for i in self.items.values()):
            message = f"No tool call found for function call output with call_id {item['call_id']}."
            await self.error("invalid_value", message, param="item.call_id", event_id=event_id)
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
