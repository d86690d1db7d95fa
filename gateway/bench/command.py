"""`python -m gateway bench`: load the gateway with simulated calls on loopback and measure it against
a forward-only relay on the same stack (the floor), in the same invocation.

For each call count and target it starts the target (the real `serve` process, or the relay) pinned to
one core, the project's echo line behind it and the simulated Twilio callers in front (both on the
other core), ramps the calls, measures a steady window, lets every call finish its turn, and prints a
table. Exit 0: every run was correct; 1: a correctness check failed (lost frames, rejected or wrong
truncates, call errors); 2: the bench could not run. Times are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
import time
from typing import Any

import orjson

from gateway.bench.driver import TARGETS, Scenario, run_scenario
from gateway.bench.report import (
    TARGET_DEFINITIONS,
    TARGETS_NOTE,
    correctness,
    machine,
    pick_median_rounds,
    summarize,
    table,
    target_values,
    targets_line,
    targets_met,
)
from gateway.bench.stamp import MAX_CALLS
from gateway.bench.wires import WIRES

SMOKE = {"calls": [4], "duration": 3.0, "ramp": 1.0, "settle": 1.0, "utterance_ms": 600, "barge_in_after": 250.0}
DEFAULTS = {"calls": [50], "duration": 20.0, "ramp": None, "settle": 2.0, "utterance_ms": 1200,
            "barge_in_after": 400.0}
SMOKE_TRUNCATION_BOUND_MS = 20.0
FIGURES = """figures (measured in the steady window; docs/benchmarks.md says how):
  CPU ms per call-second   target utime+stime (/proc) over the window / active call-seconds; (Nx) = ratio
                           to the relay run with the same call count
  RSS growth KB per call   (VmRSS at the end of the window - VmRSS idle before the calls) / calls
  carrier->upstream        per frame: caller's send time (stamped in the audio) to the echo line reading it
  upstream->carrier        per delta: echo line's send time (stamped) to the caller reading the media
  barge-in reaction        echo line sends speech_started -> caller receives clear (clears during playback)
  truncation |error|       truncate's audio_end_ms - what the caller had played of that response at the clear
  frames lost in/out       appends the echo line never saw; deltas it sent (and the target must deliver,
                           i.e. not cut by a barge-in) that no caller received
  simulators core use      echo line and caller processes; a note says when they, not the target, are the limit

targets (a line per gateway run after the table, e.g. "targets [gateway x50]: cpu_ratio 1.08 <= 1.15 ok, ..."; not
the --targets option, which picks what to load): the gateway against the project's performance goals, set for
200 calls with a barge-in every turn and the gateway on one core. Each is "ok", "MISSED" or "-" (not measured
in this run). They are reported, not asserted: the exit status reflects correctness only (0 every run correct,
1 a correctness check failed, 2 the bench could not run), so a MISSED exits 0. Fewer calls, a short --smoke run
or a shared machine can miss a goal without anything being wrong; docs/benchmarks.md has measured figures.
""" + "".join(textwrap.fill(what, 113, initial_indent=f"  {name:<25}", subsequent_indent=" " * 27) + "\n"
              for name, what in TARGET_DEFINITIONS.items())


def _calls(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or N,N,... (got {text!r})") from None
    if not counts or any(not 1 <= n < MAX_CALLS for n in counts):
        raise argparse.ArgumentTypeError(f"call counts must be from 1 to {MAX_CALLS - 1}")
    return counts


def _targets(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names or any(n not in TARGETS for n in names):
        raise argparse.ArgumentTypeError(f"targets are {', '.join(TARGETS)} (got {text!r})")
    return names


def _carriers(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    if not names or any(n not in WIRES for n in names):
        raise argparse.ArgumentTypeError(f"carriers are {', '.join(WIRES)} (got {text!r})")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.epilog = FIGURES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--calls", type=_calls, default=None, metavar="N[,N...]",
                        help="concurrent calls; several counts run one after the other (default 50)")
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="length of the steady window that is measured, s (default 20)")
    parser.add_argument("--ramp", type=float, default=None, metavar="S",
                        help="calls start evenly over this many seconds (default: calls/40, at least 2)")
    parser.add_argument("--settle", type=float, default=None, metavar="S",
                        help="wait between the end of the ramp and the window, s (default 2)")
    parser.add_argument("--barge-in-after", type=float, default=None, metavar="MS",
                        help="callers speak again this long into each answer's audio (default 400)")
    parser.add_argument("--no-barge-in", action="store_true", help="let every answer play out instead")
    parser.add_argument("--utterance-ms", type=int, default=None, metavar="MS",
                        help="length of each thing a caller says (default 1200)")
    parser.add_argument("--targets", type=_targets, default=list(TARGETS), metavar="gateway,relay",
                        help="what to load: the gateway, the forward-only relay (the floor), or both (default)")
    parser.add_argument("--carriers", type=_carriers, default=None, metavar="twilio,plivo,...",
                        help="the gateway's calls speak these carriers' protocols in turn, a mixed load (of "
                        f"{', '.join(WIRES)}; default twilio, and all of them with --smoke); the relay floor "
                        "speaks Twilio's")
    parser.add_argument("--echo-pace", type=float, default=2.0, metavar="X",
                        help="the echo line streams its answers at X times real time (default 2)")
    parser.add_argument("--delta-ms", type=int, default=20, metavar="MS",
                        help="audio per delta from the echo line, ms (default 20: one carrier frame)")
    parser.add_argument("--caller-procs", type=int, default=1, metavar="N",
                        help="processes the simulated callers are spread over (default 1)")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin the target to one core and the simulators to the others")
    parser.add_argument("--profile", metavar="DIR",
                        help="record the target with py-spy (if installed) during the window, collapsed stacks "
                        "into DIR; CPU figures of a profiled run are inflated")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run everything N times, the targets in alternating order; the table shows the "
                        "median run and the median of the per-round CPU ratios (a noisy machine needs it)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--smoke", action="store_true",
                        help="a few calls for a few seconds, both targets: checks correctness only (CI)")


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    base = SMOKE if args.smoke else DEFAULTS
    pick = lambda name: base[name] if getattr(args, name) is None else getattr(args, name)  # noqa: E731
    barge = None if args.no_barge_in else pick("barge_in_after")
    carriers = args.carriers or (tuple(WIRES) if args.smoke else ("twilio",))
    out = []
    for round_ in range(args.repeat):
        for calls in pick("calls"):
            ramp = pick("ramp")
            if ramp is None:
                ramp = max(2.0, calls / 40.0)
            for target in (args.targets if round_ % 2 == 0 else args.targets[::-1]):
                out.append(Scenario(target=target, calls=calls, ramp_s=ramp, settle_s=pick("settle"),
                                    duration_s=pick("duration"), utterance_ms=pick("utterance_ms"),
                                    barge_in_after_ms=barge, echo_pace=args.echo_pace, delta_ms=args.delta_ms,
                                    caller_procs=args.caller_procs, pin=not args.no_pin, profile_dir=args.profile,
                                    round=round_, carriers=carriers if target == "gateway" else ("twilio",)))
    return out


class Progress:
    """One updating line on a terminal; a line every few seconds in a log."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, text: str) -> None:
        if self.tty:
            sys.stderr.write("\r" + text[:160] + "\x1b[K")
        elif time.monotonic() - self.last >= 5.0:
            sys.stderr.write(text + "\n")
        else:
            return
        self.last = time.monotonic()
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _validate(args: argparse.Namespace) -> str | None:
    for name in ("duration", "ramp", "settle"):
        v = getattr(args, name)
        if v is not None and v < (1.0 if name == "duration" else 0.0):
            return f"--{name} is too small"
    if args.barge_in_after is not None and args.barge_in_after < 0:
        return "--barge-in-after must be >= 0"
    if args.utterance_ms is not None and not 200 <= args.utterance_ms <= 60_000:
        return "--utterance-ms must be from 200 to 60000"
    if not 0.1 <= args.echo_pace <= 100 or not 20 <= args.delta_ms <= 1000 or args.caller_procs < 1:
        return "--echo-pace must be 0.1..100, --delta-ms 20..1000, --caller-procs >= 1"
    if not 1 <= args.repeat <= 20:
        return "--repeat must be from 1 to 20"
    return None


async def _run_all(runs: list[Scenario], progress: Progress) -> list[dict[str, Any]]:
    results = []
    for sc in runs:
        measured = await run_scenario(sc, progress)
        results.append(summarize(measured))
    return results


def run(args: argparse.Namespace) -> int:
    problem = _validate(args)
    if problem:
        print(f"bench: {problem}", file=sys.stderr)
        return 2
    progress = Progress()
    try:
        results = asyncio.run(_run_all(scenarios(args), progress))
    except KeyboardInterrupt:
        progress.done()
        print("bench: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    except (RuntimeError, OSError, TimeoutError) as exc:
        progress.done()
        print(f"bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    progress.done()
    bound = SMOKE_TRUNCATION_BOUND_MS if args.smoke else None
    floors = {(r["round"], r["calls"]): r for r in results if r["target"] == "relay"}
    for r in results:
        problems = correctness(r, bound)
        # Saturated simulators lose track (late answers, hang-ups with audio in flight): not the target's fault.
        r["problems"], r["unjudged"] = ([], problems) if r["simulators_saturated"] else (problems, [])
        if r["target"] == "gateway":
            r["target_values"] = target_values(r, floors.get((r["round"], r["calls"])))
            r["targets_met"] = targets_met(r["target_values"])
    ok = not any(r["problems"] for r in results)
    shown = pick_median_rounds(results)
    if args.json:
        print(orjson.dumps({"ok": ok, "smoke": args.smoke, "machine": machine(), "results": results,
                            "median_runs": shown if shown is not results else None},
                           option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    else:
        print(table(shown))
        for r in results:
            for p in r["problems"]:
                print(f"FAILED [{r['target']} x{r['calls']} round {r['round'] + 1}]: {p}")
            for p in r["unjudged"]:
                print(f"not judged, simulators saturated [{r['target']} x{r['calls']} round {r['round'] + 1}]: {p}")
        lines = []
        for r in shown:
            values = r.get("target_values")
            if values and "cpu_ratio_median" in r:
                values = {**values, "cpu_ratio": r["cpu_ratio_median"]}
            if values:
                lines.append(targets_line(f"{r['target']} x{r['calls']}", values))
        if lines:
            smoke = "\n  (a --smoke run is too small and short to judge them)" if args.smoke else ""
            print("\n".join([TARGETS_NOTE + smoke, *lines]))
    return 0 if ok else 1
