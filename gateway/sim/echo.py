"""The echo line: an offline Realtime-protocol server (GA and beta dialects) that answers every caller
utterance by playing it back as the response audio. With a tool script (gateway.tools.script) it
answers the scripted turns with a function call instead, and speaks a function's output back when asked
for the response that follows it.

It is the gateway's upstream when no API key is configured, the far end of the end-to-end tests and
of the load bench, so the per-append path stays in C (orjson, base64, audioop) and every session
runs at most one pacing task, cancelled and awaited with its socket.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from aiohttp import WSMsgType, web

from gateway.sim import echo_schema as schema
from gateway.sim.echo_events import ClientEventsMixin
from gateway.sim.echo_response import ResponseMixin, _Response, chime, echo_text, new_id
from gateway.sim.vad import EnergyVad
from gateway.tools.script import ToolScript

__all__ = [
    "BETA_DISABLED_MESSAGE",
    "ROUTES",
    "EchoLine",
    "EchoSession",
    "HeaderDict",
    "chime",
    "dialect_for",
    "echo_text",
    "new_id",
    "serve_forever",
]

log = structlog.get_logger()

BETA_DISABLED_MESSAGE = (
    "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # the service takes up to 15 MiB per append
CLOSE_WAIT_S = 10.0


# The paths the echo line serves, and the dialect each one speaks (None: OpenAI's path, where the
# client's beta header or subprotocol chooses).
ROUTES: dict[str, str | None] = {"/v1/realtime": None, "/openai/v1/realtime": "ga", "/openai/realtime": "beta"}


def dialect_for(path: str, headers: Mapping[str, str]) -> str:
    """The dialect of a socket opened on one of ROUTES' paths, given its handshake headers."""
    fixed = ROUTES[path]
    if fixed is not None:
        return fixed
    if "realtime=v1" in headers.get("OpenAI-Beta", ""):
        return "beta"
    return "beta" if "openai-beta.realtime-v1" in headers.get("Sec-WebSocket-Protocol", "") else "ga"


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


class EchoSession(ClientEventsMixin, ResponseMixin):
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
        model = self.query.get("model") or self.query.get("deployment") or "gpt-realtime"
        expires = int(time.time()) + int(line.max_session_s or 3600)
        self.session: dict[str, Any] = schema.default_session(
            dialect, session_id=new_id("sess"), model=model, expires_at=expires
        )
        self.conversation_id = new_id("conv")
        self.in_format, self.out_format = schema.audio_formats(self.session, dialect)
        self.vad = EnergyVad(audio_format=self.in_format)
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
        self.user_turns = 0  # the caller's turns answered so far (the tool script counts them from 1)
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

    async def greet(self, reject_beta: bool = False) -> bool:
        """The server's first events (session.created, ...), or the refusal of a beta client on the GA
        path; False when the session ends there."""
        if reject_beta:
            await self.error("beta_api_shape_disabled", BETA_DISABLED_MESSAGE)
            await self.close_socket(4000, "invalid_request_error.beta_api_shape_disabled")
            return False
        await self.send({"type": "session.created", "session": self.session})
        if self.dialect == "beta":
            conversation = {"id": self.conversation_id, "object": "realtime.conversation"}
            await self.send({"type": "conversation.created", "conversation": conversation})
        if self._line.max_session_s is not None:
            self.spawn(self._expire(self._line.max_session_s))
        return True

    async def run(self, reject_beta: bool) -> None:
        try:
            if not await self.greet(reject_beta):
                return
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
        tool_script: ToolScript | None = None,
        handshake_delay_ms: float = 0.0,
        session_update_delay_ms: float = 0.0,
    ) -> None:
        self.host = host
        # A real upstream's set-up latency (sim/echo_settings.py): before answering the upgrade, and
        # before applying a session.update (the events after it wait, as the server handles them in order).
        self.handshake_delay_ms, self.session_update_delay_ms = handshake_delay_ms, session_update_delay_ms
        self.api_key = api_key
        self.pace = pace
        self.delta_ms = delta_ms
        self.reject_beta_on_openai_path = reject_beta_on_openai_path
        self.max_session_s = max_session_s
        self.record_audio_events = record_audio_events  # False keeps appends/deltas out of the logs (bench)
        self.tool_script = tool_script  # turn N of a session: a function call instead of an echo
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
        for path in ROUTES:
            app.router.add_get(path, self._route)
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

    async def _route(self, request: web.Request) -> web.StreamResponse:
        if self.handshake_delay_ms:
            await asyncio.sleep(self.handshake_delay_ms / 1000.0)
            if request.transport is None or request.transport.is_closing():  # the client gave up meanwhile
                return web.Response(status=499)
        dialect = dialect_for(request.path, request.headers)
        reject = dialect == "beta" and ROUTES[request.path] is None and self.reject_beta_on_openai_path
        return await self._accept(request, dialect, reject)

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
