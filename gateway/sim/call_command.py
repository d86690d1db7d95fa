"""``python -m gateway call``: place one simulated Twilio call against a running gateway and report on it."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import wave
from dataclasses import asdict
from typing import Any

import orjson

from gateway.sim.audio import BYTES_PER_MS, read_wav_as_ulaw, speech_like, write_ulaw_as_wav
from gateway.sim.caller import CallReport, CallScript, SimulatedCaller

DEFAULT_UTTERANCE_MS = 1200


def add_arguments(parser: argparse.ArgumentParser) -> None:
    default_url = f"http://127.0.0.1:{os.environ.get('PORT') or 8080}"
    parser.add_argument("--url", default=default_url, help="gateway base URL; the call POSTs {url}/voice/twilio "
                        f"(default: {default_url}, the port from $PORT when set)")
    parser.add_argument("--audio", metavar="IN.wav", help="what the caller says (any PCM WAV; "
                        f"default: a synthetic {DEFAULT_UTTERANCE_MS / 1000:.1f} s speech-like utterance)")
    parser.add_argument("--turns", type=int, default=2, help="how many times the caller says it (default 2)")
    parser.add_argument("--record", metavar="OUT.wav", help="write what the caller heard, from the stream "
                        "start to the hang-up, with idle gaps as silence at their real positions")
    parser.add_argument("--barge-in-after", type=float, metavar="MS", help="start the next utterance MS ms "
                        "into the agent's audio instead of waiting for it to finish")
    parser.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN"),
                        help="sign the webhook and the WebSocket handshake like Twilio "
                        "(default: $TWILIO_AUTH_TOKEN; unsigned when empty)")
    parser.add_argument("--from", dest="from_", default="+15005550006", help="caller number (From)")
    parser.add_argument("--to", default="+15005550001", help="called number (To)")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound on the call, s (default 60)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _fail(message: str) -> int:
    print(f"call: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Exit 0: call completed and at least one agent answer heard; 1: otherwise; 2: bad args / unreachable."""
    if args.turns < 1:
        return _fail("--turns must be at least 1")
    if args.timeout <= 0:
        return _fail("--timeout must be positive")
    if args.barge_in_after is not None and args.barge_in_after < 0:
        return _fail("--barge-in-after must be >= 0")
    if not args.url.startswith(("http://", "https://")):
        return _fail(f"--url must be an http(s) URL, got {args.url!r}")
    if args.audio:
        try:
            utterance = read_wav_as_ulaw(args.audio)
        except (OSError, EOFError, ValueError, wave.Error) as exc:
            return _fail(f"cannot read {args.audio}: {exc}")
    else:
        utterance = speech_like(DEFAULT_UTTERANCE_MS)
    script = CallScript(utterances=[utterance] * args.turns, barge_in_after_ms=args.barge_in_after,
                        max_call_ms=args.timeout * 1000.0)
    caller = SimulatedCaller(args.url, auth_token=args.auth_token or None, from_=args.from_, to=args.to,
                             connect_timeout_s=min(10.0, args.timeout))
    try:
        report = asyncio.run(asyncio.wait_for(caller.run(script), args.timeout + 15.0))
    except TimeoutError:
        print(f"call: no result within {args.timeout + 15.0:.0f} s", file=sys.stderr)
        return 1
    if report.webhook_status == 0:
        return _fail(f"gateway unreachable at {args.url}: {report.errors[0] if report.errors else '?'}")
    if args.record:
        try:
            write_ulaw_as_wav(args.record, report.heard_timeline)
        except OSError as exc:
            return _fail(f"cannot write {args.record}: {exc}")
    print(orjson.dumps(report_as_json(report), option=orjson.OPT_INDENT_2).decode() if args.json
          else format_report(report))
    return 0 if report.webhook_status == 200 and report.turn_latencies_ms else 1


def report_as_json(report: CallReport) -> dict[str, Any]:
    out = asdict(report)
    out.pop("heard")
    out.pop("heard_timeline")
    out["heard_ms"] = len(report.heard) / BYTES_PER_MS
    out["events"] = [{"t_ms": round(t, 1), "event": name, **data} for t, name, data in report.events]
    return out


def format_report(r: CallReport) -> str:
    lines = [f"call {r.call_sid}  stream {r.stream_sid}", f"webhook: HTTP {r.webhook_status}"]
    if r.stream_parameters:
        lines.append("stream parameters: " + ", ".join(f"{k}={v}" for k, v in r.stream_parameters.items()))
    lines.append("timeline (ms from stream start):")
    for t, name, data in r.events:
        detail = " ".join(f"{k}={v}" for k, v in data.items())
        lines.append(f"  {t:9.1f}  {name:<18} {detail}".rstrip())
    lines.append("turns:")
    for i, end in enumerate(r.utterance_ends_ms):
        ans = r.answer_starts_ms[i] if i < len(r.answer_starts_ms) else None
        heard = f"first agent audio played after {ans - end:.0f} ms" if ans is not None else "no answer heard"
        lines.append(f"  utterance {i + 1} ended at {end:.0f} ms -> {heard}")
    lines += [f"barge-in: caller started speaking at {t:.0f} ms over agent audio" for t in r.barge_ins_ms]
    for c in r.clears:
        lines.append(f"clear at {c['t_ms']:.0f} ms: {c['segment_played_ms']:.0f} ms of the agent segment "
                     f"had played, {c['flushed_marks']} mark(s) flushed")
    lines += [
        f"frames sent {r.frames_sent}, received {r.frames_received} ({r.media_ms_received:.0f} ms of audio), "
        f"heard {len(r.heard) / BYTES_PER_MS:.0f} ms",
        f"marks echoed {len(r.marks_echoed)}, flushed {len(r.marks_flushed)}",
        f"closed by {r.closed_by or '?'} (code {r.close_code})",
    ]
    lines += [f"error: {e}" for e in r.errors]
    return "\n".join(lines)
