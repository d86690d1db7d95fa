"""``python -m gateway call``: place one simulated call (Twilio, SignalWire, Plivo, Telnyx or Vonage) against a
running gateway and report on it."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict
from typing import Any

import orjson

from gateway.core.keypad import KEYS
from gateway.sim.audio import BYTES_PER_MS, SPEECH_DBFS, speech_like, write_ulaw_as_wav
from gateway.sim.caller import DIALECTS, CallReport, CallScript, SimulatedCaller
from gateway.sim.plivo_caller import PlivoCaller
from gateway.sim.telnyx_caller import TelnyxCaller, new_telnyx_key_pair, telnyx_private_key
from gateway.sim.vonage_caller import VonageCaller
from gateway.sim.wav import read_wav_as_ulaw

DEFAULT_UTTERANCE_MS = 1200
MARK_EVENTS = frozenset({"mark_received", "mark_echoed", "mark_flushed"})  # ~15 per answer second: -v only
SIGNING_SECRET = {"twilio": "TWILIO_AUTH_TOKEN", "signalwire": "SIGNALWIRE_SIGNING_KEY",  # --auth-token's default
                  "plivo": "PLIVO_AUTH_TOKEN", "vonage": "VONAGE_SIGNATURE_SECRET",
                  # Telnyx signs with its private key; the gateway holds the public one (TELNYX_PUBLIC_KEY)
                  "telnyx": "TELNYX_SIM_PRIVATE_KEY"}
CARRIER_NAMES = {"twilio": "Twilio", "signalwire": "SignalWire", "plivo": "Plivo", "telnyx": "Telnyx",
                 "vonage": "Vonage"}
# Plivo, Telnyx and Vonage speak their own protocols (sim/<carrier>_caller.py)
CARRIERS = sorted([*DIALECTS, "plivo", "telnyx", "vonage"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    default_url = f"http://127.0.0.1:{os.environ.get('PORT') or 8080}"
    parser.add_argument("--url", default=default_url, help="gateway base URL; the call POSTs "
                        f"{{url}}/voice/<carrier> (default: {default_url}, the port from $PORT when set)")
    parser.add_argument("--carrier", choices=CARRIERS, default="twilio",
                        help="the carrier to impersonate: its webhook route, signature header and id shapes "
                        "(default: twilio)")
    parser.add_argument("--audio", metavar="IN.wav", help="what the caller says: a WAV file, PCM 8/16/24/32-bit, "
                        "float, μ-law or A-law (plain or extensible), any rate and channels; sent as 8 kHz mono "
                        f"μ-law (default: a synthetic {DEFAULT_UTTERANCE_MS / 1000:.1f} s speech-like utterance)")
    parser.add_argument("--turns", type=int, default=2, help="how many times the caller says it (default 2)")
    parser.add_argument("--record", metavar="OUT.wav", help="write what the caller heard, from the stream "
                        "start to the hang-up, with idle gaps as silence at their real positions")
    parser.add_argument("--barge-in-after", type=float, metavar="MS", help="start the next utterance MS ms "
                        "into the agent's audio instead of waiting for it to finish")
    parser.add_argument("--dtmf", metavar="KEYS", default="", help="after the last utterance's answer, press "
                        "these keys (0-9, *, #, A-D; one every 200 ms) as one more turn and wait for the answer: "
                        "what they become is the tools file's dtmf section (e.g. --dtmf 4711#)")
    parser.add_argument("--hangup-after", type=float, metavar="MS", default=700.0, help="after the last answer, "
                        "hang up once the line has been quiet this long (default 700); a long one shows the "
                        "gateway's silence handling (IDLE_REPROMPT_S, IDLE_HANGUP_S)")
    parser.add_argument("--auth-token", default=None,
                        help="sign the webhook (and, for Twilio, the WebSocket handshake) like the carrier: "
                        "Twilio's auth token, SignalWire's Signing Key, Plivo's Auth Token, Vonage's signature "
                        "secret, or for Telnyx a base64 Ed25519 private key whose public key the gateway has in "
                        "TELNYX_PUBLIC_KEY (`python -m gateway call --carrier telnyx --new-telnyx-key` makes a "
                        "pair) (default: $TWILIO_AUTH_TOKEN, $SIGNALWIRE_SIGNING_KEY, $PLIVO_AUTH_TOKEN, "
                        "$VONAGE_SIGNATURE_SECRET or $TELNYX_SIM_PRIVATE_KEY by --carrier; unsigned when empty)")
    parser.add_argument("--new-telnyx-key", action="store_true",
                        help="print a new Ed25519 key pair for signing simulated Telnyx webhooks and exit")
    parser.add_argument("--listen-first", type=float, metavar="MS", default=300.0,
                        help="silence before the first utterance, ms (default 300): e.g. 6000 to hear a greeting out")
    parser.add_argument("--from", dest="from_", default="+15005550006", help="caller number (From)")
    parser.add_argument("--to", default="+15005550001", help="called number (To)")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound on the call, s (default 60)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="list every mark in the timeline (each one received and echoed)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _fail(message: str) -> int:
    print(f"call: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Exit 0: call completed and at least one agent answer heard; 1: otherwise; 2: bad args / unreachable."""
    if getattr(args, "new_telnyx_key", False):
        private, public = new_telnyx_key_pair()
        print(f"TELNYX_SIM_PRIVATE_KEY={private}  # for `python -m gateway call --carrier telnyx`\n"
              f"TELNYX_PUBLIC_KEY={public}  # for the gateway under test (a real one takes Telnyx's)")
        return 0
    if args.turns < 1:
        return _fail("--turns must be at least 1")
    if args.timeout <= 0:
        return _fail("--timeout must be positive")
    if args.barge_in_after is not None and args.barge_in_after < 0:
        return _fail("--barge-in-after must be >= 0")
    keys = getattr(args, "dtmf", "") or ""
    if any(key not in KEYS for key in keys) or len(keys) > 64:
        return _fail(f"--dtmf takes up to 64 keys of {KEYS} (got {keys!r})")
    hangup_after = getattr(args, "hangup_after", 700.0)
    if hangup_after < 0:
        return _fail("--hangup-after must be >= 0")
    if not args.url.startswith(("http://", "https://")):
        return _fail(f"--url must be an http(s) URL, got {args.url!r}")
    if args.audio:
        try:
            utterance = read_wav_as_ulaw(args.audio)
        except (OSError, ValueError) as exc:
            return _fail(f"cannot read {args.audio}: {exc}")
    else:
        utterance = speech_like(DEFAULT_UTTERANCE_MS)
    script = CallScript(utterances=[utterance] * args.turns, barge_in_after_ms=args.barge_in_after,
                        max_call_ms=args.timeout * 1000.0, keys=keys, hangup_after_idle_ms=hangup_after,
                        lead_silence_ms=max(0.0, getattr(args, "listen_first", 300.0)))
    carrier = getattr(args, "carrier", "twilio")
    token = args.auth_token if args.auth_token is not None else os.environ.get(SIGNING_SECRET[carrier])
    caller: SimulatedCaller
    common: dict[str, Any] = {"from_": args.from_, "to": args.to, "connect_timeout_s": min(10.0, args.timeout)}
    if carrier == "plivo":
        caller = PlivoCaller(args.url, auth_token=token or None, **common)
    elif carrier == "vonage":
        caller = VonageCaller(args.url, auth_token=token or None, **common)
    elif carrier == "telnyx":
        try:
            key = telnyx_private_key(token) if token else None
        except ValueError as exc:
            return _fail(f"--auth-token for Telnyx: {exc}")
        caller = TelnyxCaller(args.url, private_key=key, **common)  # in the codec the TeXML answer names
    else:
        caller = SimulatedCaller(args.url, auth_token=token or None, from_=args.from_, to=args.to,
                                 connect_timeout_s=min(10.0, args.timeout), carrier=carrier)
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
    hint = refusal_hint(report, args.url, signed=bool(token), carrier=carrier)
    print(orjson.dumps(report_as_json(report, hint), option=orjson.OPT_INDENT_2).decode() if args.json
          else format_report(report, hint=hint, verbose=args.verbose))
    return 0 if report.webhook_status == 200 and report.turn_latencies_ms else 1


# ------------------------------------------------------------------------------------------- figures
SPEECH_END = f"its last 10 ms above {SPEECH_DBFS:.0f} dBFS"
DEFINITIONS = {
    "answer_heard_after_ms": "end of the caller's speech (" + SPEECH_END + ") -> the first agent audio played "
    "to the caller, on the caller's clock; it includes the VAD's end-of-turn silence (VAD_SILENCE_DURATION_MS, "
    "500 ms by default)",
    "turn_latencies_ms": "end of the caller's audio (trailing quiet included) -> the first agent audio played",
    "gateway": "the gateway's call_summary times the same turn on its own clock, from the end of speech as the "
    "model's VAD placed it (speech_stopped): heard_latency_ms to the start of playback (from Twilio's mark "
    "echoes; the figure to compare), turn_latency_ms to the first answer audio written to the carrier "
    "(without the network and the carrier's buffering)",
}
ANSWER_HEARD_HELP = f"""answer heard after = end of your speech ({SPEECH_END}) -> first agent audio played,
  on the caller's clock; it includes the VAD's end-of-turn silence (VAD_SILENCE_DURATION_MS, default 500).
  The gateway's call_summary times the same turn on its clock, from the end of speech as the model's VAD
  placed it: heard_latency_ms to the start of playback (from the carrier's mark echoes; comparable to this) and
  turn_latency_ms to the first answer audio written to the carrier (no network or carrier buffering)."""


def _turn_line(r: CallReport, i: int) -> str:
    end = r.utterance_ends_ms[i]
    speech = r.speech_ends_ms[i] if i < len(r.speech_ends_ms) else end
    heard = r.answer_heard_after_ms[i] if i < len(r.answer_heard_after_ms) else None
    answer = "no answer heard" if heard is None else f"answer heard after {heard:.0f} ms"
    if i == r.keys_turn:
        return f"  keys pressed, the last at {end:.0f} ms: {answer} (from the last key)"
    if end - speech < 1.0:
        return f"  utterance {i + 1} ended at {end:.0f} ms: {answer}"
    return (f"  utterance {i + 1} ended at {end:.0f} ms, its speech at {speech:.0f} ms "
            f"({end - speech:.0f} ms of quiet after it): {answer}")


# ------------------------------------------------------------------------------------------- refusals
def stream_started(r: CallReport) -> bool:
    return any(name == "start_sent" for _, name, _ in r.events)


def refusal_hint(r: CallReport, url: str, *, signed: bool, carrier: str = "twilio") -> str | None:
    """Why the call never got a media stream, and what to do about it; None when it did."""
    secret, name = SIGNING_SECRET[carrier], CARRIER_NAMES[carrier]
    status = r.webhook_status
    if stream_started(r) or status == 0:
        if r.closed_by != "gateway" or any(a is not None for a in r.answer_starts_ms):
            return None
        if r.close_code == 1008:
            return ("the gateway refused the media stream (close code 1008): its log says why, usually the "
                    "stream token (expired, replayed, or minted by a gateway with another STREAM_TOKEN_SECRET)")
        return f"the gateway closed the media stream (code {r.close_code}) before any answer: its log says why"
    webhook = f"{url.rstrip('/')}/voice/{carrier}"
    said = " ".join(r.twiml.split())[:120]
    if status == 403 and carrier == "telnyx":
        return ("the webhook refused the call (HTTP 403): the gateway verifies Telnyx signatures with its "
                "TELNYX_PUBLIC_KEY; --auth-token (or TELNYX_SIM_PRIVATE_KEY) must be the private key of that "
                "pair (`--new-telnyx-key` prints a test pair: give the gateway its public key)")
    if status == 403:
        if not signed:
            return (f"the webhook refused the call (HTTP 403): set --auth-token (or {secret}) to the "
                    f"gateway's {secret}")
        return ("the webhook refused the call (HTTP 403): the signature does not match; --auth-token must be "
                f"the gateway's {secret}, and --url the address the gateway signs against (its "
                "PUBLIC_URL when set)")
    if status in (404, 405):
        return (f"nothing answers a {name} webhook at {webhook} (HTTP {status}): --url must be the gateway's "
                "base URL, e.g. http://127.0.0.1:8080")
    if status == 400:
        return (f"the webhook refused the call as malformed (HTTP 400: {said or 'no reason given'}): the "
                "gateway's log says which field; is --url a voice gateway of this version?")
    if status >= 500:
        return f"the gateway failed on the webhook (HTTP {status}): its log says why"
    if status != 200:
        return f"the webhook refused the call (HTTP {status}{': ' + said if said else ''})"
    if carrier == "vonage":
        return vonage_hint(r.twiml, said)
    try:
        root = ET.fromstring(r.twiml)
    except ET.ParseError:
        return (f"the webhook answered HTTP 200 but not with TwiML ({said or 'an empty body'}): is --url "
                "the voice gateway?")
    verbs = [child.tag for child in root] if root.tag == "Response" else []
    if root.tag != "Response":
        return f"the webhook answered XML that is not TwiML (<{root.tag}>): is --url the voice gateway?"
    if "Hangup" in verbs or "Reject" in verbs:
        message = " ".join((root.findtext("Say") or root.findtext("Speak") or "").split())
        return ("the gateway declined the call (TwiML " + "+".join(f"<{v}>" for v in verbs)
                + (f": {message!r}" if message else "") + "): it is draining or at MAX_CONCURRENT_CALLS")
    if carrier == "plivo":
        return ("the answer has no <Stream>wss://...</Stream> (" + ("+".join(f"<{v}>" for v in verbs) or "empty")
                + "): the gateway did not connect the call")
    return ("the webhook's TwiML has no <Connect><Stream url=...> ("
            + ("+".join(f"<{v}>" for v in verbs) or "empty") + "): the gateway did not connect the call")


def vonage_hint(answer: str, said: str) -> str:
    """Why Vonage's NCCO (a JSON array of actions) connected no stream."""
    try:
        ncco = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return (f"the webhook answered HTTP 200 but not with an NCCO ({said or 'an empty body'}): is --url the "
                "voice gateway?")
    actions = [a.get("action") for a in ncco if isinstance(a, dict)] if isinstance(ncco, list) else []
    if "talk" in actions and "connect" not in actions:
        return "the gateway declined the call (NCCO talk only): it is draining or at MAX_CONCURRENT_CALLS"
    return ("the NCCO has no connect action to a websocket endpoint (" + ("+".join(map(str, actions)) or "empty")
            + "): the gateway did not connect the call")


# ------------------------------------------------------------------------------------------- output
def short_secret(value: str) -> str:
    """Enough of a token to tell two apart (8 characters at most, half of a short one), never the token."""
    return value[: min(8, len(value) // 2)] + "…"


def shown_parameters(params: dict[str, str]) -> dict[str, str]:
    return {k: short_secret(v) if "token" in k.lower() else v for k, v in params.items()}


def report_as_json(report: CallReport, hint: str | None = None) -> dict[str, Any]:
    out = asdict(report)
    out.pop("heard")
    out.pop("heard_timeline")
    out["stream_parameters"] = shown_parameters(report.stream_parameters)
    twiml = report.twiml
    for name, value in report.stream_parameters.items():
        if "token" in name.lower() and value:
            twiml = twiml.replace(value, short_secret(value))
    out["twiml"] = twiml
    out["heard_ms"] = len(report.heard) / BYTES_PER_MS
    out["events"] = [{"t_ms": round(t, 1), "event": name, **data} for t, name, data in report.events]
    out["refused"] = hint
    out["definitions"] = DEFINITIONS
    return out


def gateway_hangup_after_audio(r: CallReport) -> float | None:
    """How long after the agent's last audio finished playing the gateway closed the stream; None when the
    caller hung up, or the gateway closed it while audio was still playing or before any was heard."""
    closed = next((t for t, name, _ in r.events if name == "closed_by_gateway"), None)
    ends = [t for t, name, data in r.events if name == "agent_audio_end" and not data.get("cleared")]
    starts = [t for t, name, _ in r.events if name == "agent_audio_start"]
    if closed is None or not ends or max(ends) > closed + 1.0 or max(starts, default=0.0) > max(ends):
        return None  # still playing when the stream closed (its segment never ended)
    return max(0.0, closed - max(ends))


def format_report(r: CallReport, *, hint: str | None = None, verbose: bool = False) -> str:
    lines = [f"call {r.call_sid}  stream {r.stream_sid}", f"webhook: HTTP {r.webhook_status}"]
    if hint and not stream_started(r):
        return "\n".join([*lines, f"refused: {hint}"])
    if r.stream_parameters:
        lines.append("stream parameters: " + ", ".join(
            f"{k}={v}" for k, v in shown_parameters(r.stream_parameters).items()))
    lines.append("timeline (ms from stream start):")
    hidden = 0
    for t, name, data in r.events:
        if name in MARK_EVENTS and not verbose:
            hidden += 1
            continue
        detail = " ".join(f"{k}={v}" for k, v in data.items())
        lines.append(f"  {t:9.1f}  {name:<18} {detail}".rstrip())
    if hidden:
        lines.append(f"  ({hidden} mark events not shown; -v lists them)")
    if r.utterance_ends_ms:
        lines.append("turns:")
        lines += [_turn_line(r, i) for i in range(len(r.utterance_ends_ms))]
        lines.append(ANSWER_HEARD_HELP)
    else:
        lines.append("turns: none (the stream ended before the caller finished speaking)")
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
    lines += [f"keys played to the caller by the gateway (send_dtmf): {keys}" for keys in r.keys_received]
    ended = gateway_hangup_after_audio(r)
    if ended is not None:  # the agent hung up (end_call), moved the call (transfer_call) or the line was idle
        lines.append(f"the gateway hung up {ended:.0f} ms after the agent's last audio finished playing "
                     "(end_call, transfer_call or a silent line: the gateway's call_summary says which)")
    lines += [f"error: {e}" for e in r.errors]
    if hint:
        lines.append(f"hint: {hint}")
    return "\n".join(lines)
