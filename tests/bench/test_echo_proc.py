"""The bench's echo line on its lean server: the same Realtime events as the echo line, every append
counted once and in order whether it took the synchronous path or queued behind another event, and
every delta stamped for its call."""

from __future__ import annotations

import asyncio

import orjson

from gateway.bench import stamp, wsclient
from gateway.bench.echo_proc import BenchLine
from gateway.realtime.dialect import append
from gateway.sim.audio import b64, frames, silence, speech_like

CALL = 17


async def test_a_turn_through_the_bench_echo_line() -> None:
    line = BenchLine(host="127.0.0.1", port=0, pace=0, delta_ms=20, record_audio_events=False)
    await line.start()
    events: list[dict] = []
    got = asyncio.Event()

    def on_text(payload: bytes) -> None:
        events.append(orjson.loads(payload))
        got.set()

    async def until(kind: str) -> dict:
        async with asyncio.timeout(5):
            while True:
                for e in events:
                    if e["type"] == kind:
                        return e
                got.clear()
                await got.wait()

    client = await wsclient.connect(line.url.replace("/v1/realtime", "/v1/realtime?model=gpt-realtime"), on_text,
                                    lambda: None)
    try:
        await until("session.created")
        update = {"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"format": {"type": "audio/pcmu"}}, "output": {"format": {"type": "audio/pcmu"}}}}}
        client.send_text(orjson.dumps(update))  # the appends right behind it queue until it is handled
        audio = frames(speech_like(1200, seed=2) + silence(800))
        for seq, frame in enumerate(audio, start=1):
            head = stamp.encode(stamp.KIND_IN, 0, CALL, seq, stamp.now_ticks())
            client.send_text(append(head + b64(frame[stamp.STAMP_BYTES:])))
        await until("session.updated")
        started = await until("input_audio_buffer.speech_started")
        stopped = await until("input_audio_buffer.speech_stopped")
        assert started["audio_start_ms"] <= 300 and 1150 <= stopped["audio_end_ms"] <= 1250
        done = await until("response.done")
        assert done["response"]["status"] == "completed"
        kinds = [e["type"] for e in events]
        for kind in ("input_audio_buffer.committed", "response.created", "response.output_item.added",
                     "response.output_audio.done", "conversation.item.done"):
            assert kind in kinds
        deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
        stamps = [stamp.decode(d["delta"]) for d in deltas]
        assert stamps and all(s is not None and s.kind == stamp.KIND_OUT and s.call == CALL for s in stamps)
        assert [s.seq for s in stamps] == list(range(1, len(stamps) + 1))
        assert stamps[-1].flags & stamp.FLAG_LAST and not any(s.flags & stamp.FLAG_STALE for s in stamps)

        item = done["response"]["output"][0]["id"]
        client.send_text(orjson.dumps({"type": "conversation.item.truncate", "item_id": item, "content_index": 0,
                                       "audio_end_ms": 100}))
        await until("conversation.item.truncated")
        rec = line.recorder.calls[CALL]
        assert (rec.appends, rec.order_errors, rec.last_seq) == (len(audio), 0, len(audio))
        assert rec.deltas == len(deltas) and rec.deltas_stale == 0
        assert [(t[1], t[2], t[3]) for t in rec.truncations] == [(1, 100, True)]
        assert line.recorder.unstamped_appends == 0 and not any(s.errors_sent for s in line.sessions)
    finally:
        client.close()
        await line.stop()
