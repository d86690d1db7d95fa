"""The forward-only relay: the floor of the stack the gateway is built on.

Same stack as the gateway (aiohttp server, websockets client, uvloop, orjson) and nothing else:
carrier media in -> `input_audio_buffer.append`, audio delta -> carrier media, speech_started ->
carrier `clear`. No marks tracking, no truncate, no metrics, no logs, no token check. Caller audio that
arrives before the upstream is open waits in a list (dropping it would not be a relay).

    python -m gateway.bench.relay --port 8081 --upstream ws://127.0.0.1:8765/v1/realtime
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import orjson
from aiohttp import WSMsgType, web
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

TEXT = WSMsgType.TEXT
UPSTREAM = web.AppKey("upstream", str)
APPEND_HEAD = b'{"type":"input_audio_buffer.append","audio":'
SESSION_UPDATE = orjson.dumps({"type": "session.update", "session": {
    "type": "realtime",
    "audio": {
        "input": {"format": {"type": "audio/pcmu"}, "turn_detection": {
            "type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}},
        "output": {"format": {"type": "audio/pcmu"}},
    },
}})
DELTAS = frozenset({"response.output_audio.delta", "response.audio.delta"})
SPEECH_STARTED = "input_audio_buffer.speech_started"


async def voice(request: web.Request) -> web.Response:
    host = request.host
    twiml = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="ws://{host}/media">'
             f'<Parameter name="token" value="relay"/></Stream></Connect></Response>')
    return web.Response(text=twiml, content_type="text/xml")


async def media(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoping=True, decode_text=False)
    await ws.prepare(request)
    upstream: list[ClientConnection] = []  # the connection, once open
    waiting: list[bytes] = []  # appends before it opened
    pump: asyncio.Task[None] | None = None
    try:
        async for msg in ws:
            if msg.type is not TEXT:
                continue
            frame = orjson.loads(msg.data)
            event = frame.get("event")
            if event == "media":
                append = APPEND_HEAD + orjson.dumps(frame["media"]["payload"]) + b"}"
                if upstream:
                    with contextlib.suppress(ConnectionClosed):
                        await upstream[0].send(append, text=True)
                else:
                    waiting.append(append)
            elif event == "start" and pump is None:
                sid = orjson.dumps(frame["start"]["streamSid"])
                pump = asyncio.create_task(to_carrier(request.app[UPSTREAM], ws, sid, upstream, waiting))
            elif event == "stop":
                break
    finally:
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        if upstream:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(upstream[0].close(), 1.0)
        await ws.close()
    return ws


async def to_carrier(url: str, ws: web.WebSocketResponse, sid: bytes, upstream: list[ClientConnection],
                     waiting: list[bytes]) -> None:
    try:
        conn = await connect(url, compression=None, max_size=8 * 1024 * 1024, max_queue=64, close_timeout=1.0)
    except Exception:
        await ws.close(code=1011, message=b"upstream unreachable")
        return
    await conn.send(SESSION_UPDATE, text=True)
    for append in waiting:
        await conn.send(append, text=True)
    waiting.clear()
    upstream.append(conn)
    media_head = b'{"event":"media","streamSid":' + sid + b',"media":{"payload":'
    clear = b'{"event":"clear","streamSid":' + sid + b"}"
    try:
        while True:
            event = orjson.loads(await conn.recv(decode=False))
            kind = event.get("type")
            if kind in DELTAS:
                await ws.send_frame(media_head + orjson.dumps(event["delta"]) + b"}}", TEXT)
            elif kind == SPEECH_STARTED:
                await ws.send_frame(clear, TEXT)
    except ConnectionClosed:
        await ws.close()


def create_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream
    app.router.add_post("/voice", voice)
    app.router.add_get("/voice", voice)
    app.router.add_get("/media", media)
    return app


async def serve(host: str, port: int, upstream: str) -> None:
    runner = web.AppRunner(create_app(upstream), handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway.bench.relay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--upstream", required=True, help="Realtime WebSocket URL (GA dialect)")
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(serve(args.host, args.port, args.upstream))


if __name__ == "__main__":
    main()
