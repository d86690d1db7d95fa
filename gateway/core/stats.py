"""The running figures of one call, kept as plain numbers: the per-frame path only adds to them.

The I/O layer exports them to Prometheus and writes them into the call summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# input_cached: the input tokens served from the cache (text and audio); input_cached_audio: the audio among them
TOKEN_KINDS = ("input_text", "input_audio", "input_cached", "input_cached_audio", "output_text", "output_audio")


@dataclass(slots=True)
class CallStats:
    frames_in: int = 0
    frames_out: int = 0
    frames_dropped: int = 0
    audio_in_ms: float = 0.0
    audio_out_ms: float = 0.0
    marks_played: int = 0
    marks_flushed: int = 0
    stale_deltas_dropped: int = 0
    dtmf: int = 0  # keys the caller pressed
    turns: int = 0
    barge_ins: int = 0
    truncates_rejected: int = 0
    frames_rate_limited: int = 0  # caller audio over the per-second limit, dropped
    reconnects: int = 0  # upstream sessions lost and replaced
    recycles: int = 0  # upstream sessions renewed between turns before the session cap
    turn_latencies_ms: list[float] = field(default_factory=list)
    heard_latencies_ms: list[float] = field(default_factory=list)
    truncations: list[tuple[str, int, float]] = field(default_factory=list)  # item, audio_end_ms, sent_ms
    upstream_errors: list[str] = field(default_factory=list)
    responses: dict[str, int] = field(default_factory=dict)  # final status -> count
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_KINDS, 0))
    transcript: list[dict[str, Any]] = field(default_factory=list)  # {role, text, item_id}
    carrier_errors: dict[str, int] = field(default_factory=dict)  # carrier frames ignored, by kind
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {name, call_id, outcome, duration_ms[, arguments]}
    tool_results: list[tuple[str, str, float]] = field(default_factory=list)  # (tool, outcome, ms), as they end
    transfers: list[str] = field(default_factory=list)  # results: transferred, refused, failed, unavailable
    keypad: list[dict[str, Any]] = field(default_factory=list)  # entries sent to the model: {digits, count, sensitive}
    idle_reprompts: int = 0  # the model asked to check in on a silent caller
    upstream_ready_ms: float | None = None  # from the stream's start to the first session answering
    upstream_not_ready: bool = False  # the ready deadline passed first
    # answering-machine detection (outbound calls): human, machine, unknown, or timeout (taken for a person)
    answered_by: str | None = None
    answer_wait_ms: float | None = None  # from the stream's start to the result
    frames_amd_held: int = 0  # callee audio not passed upstream while the answer was unknown (or a machine's)

    def count_response(self, status: str, usage: dict[str, int] | None) -> None:
        """A response ended; `usage` is tokens by kind (TOKEN_KINDS), as the Realtime face parsed it."""
        self.responses[status] = self.responses.get(status, 0) + 1
        if usage:
            tokens = self.tokens
            for kind, value in usage.items():
                if kind in tokens and value > 0:
                    tokens[kind] += value

    @property
    def carrier_errors_total(self) -> int:
        return sum(self.carrier_errors.values())
