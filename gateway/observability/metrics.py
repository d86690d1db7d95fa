"""Every Prometheus metric of the gateway, with its help text, in one registry.

Labels are bounded (carrier, provider, outcome, status, code, kind, direction); never a CallSid or a
phone number. Per-frame figures are not counted here on the hot path: each call keeps plain numbers
(`CallStats`) and `CallExporter.flush` adds what is new to the counters, at every scrape and at the
end of the call.

No `_created` series: prometheus_client's are switched off for the process when this module is imported
(they doubled the exposition and no dashboard or alert uses them). `initialise_labels` creates the known
label values of the labelled counters at 0, so `rate()` and alerts see a series before its first
increment (a counter born at 1 loses that first increment to `rate()`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from gateway.core.stats import TOKEN_KINDS, CallStats

disable_created_metrics()  # process-wide (PROMETHEUS_DISABLE_CREATED_SERIES does the same before import)

REGISTRY = CollectorRegistry(auto_describe=True)

# The label values known in advance, created at 0 by initialise_labels.
CALL_OUTCOMES = ("completed", "rejected", "upstream_error", "carrier_error", "timeout", "drained", "abandoned",
                 "agent_ended", "transferred", "idle", "voicemail", "hung_up_by_api")
WEBHOOK_RESULTS = ("accepted", "forbidden", "bad_request", "busy", "control_document", "not_found")
TOKEN_REJECT_REASONS = ("missing", "malformed", "bad_signature", "expired", "replayed", "no_start",
                        "bad_handshake_signature", "over_capacity", "outbound_mismatch")
DROP_REASONS = ("buffer_overflow", "stale_delta", "rate_limited")
AUDIO_DIRECTIONS = ("inbound", "outbound")
FALLBACK_RESULTS = ("redirected", "failed", "unconfigured")
STALL_SIDES = ("carrier", "upstream")
RECONNECT_REASONS = ("closed", "server_error", "session_expired", "stalled", "recycle")
TOOL_OUTCOMES = ("ok", "bad_arguments", "unknown_tool", "http_error", "timeout", "too_large", "failed", "refused",
                 "cancelled")
TRANSFER_RESULTS = ("transferred", "refused", "failed", "unavailable")
DTMF_DIRECTIONS = ("inbound", "outbound")
OUTBOUND_RESULTS = ("completed", "machine", "busy", "no_answer", "failed", "canceled")  # outbound.calls.RESULTS
CALL_API_RESULTS = ("placed", "bad_request", "forbidden", "unauthorized", "off", "rate_limited", "busy", "draining",
                    "unavailable", "carrier_error", "not_found", "conflict", "hung_up", "transferred")
STATUS_CALLBACK_RESULTS = ("accepted", "forbidden", "bad_request", "unknown_call")
RECORDING_RESULTS = ("written", "failed")
WARM_CLAIM_RESULTS = ("hit", "miss")
WARM_DISCARD_REASONS = ("closed", "error", "unexpected", "renewed", "expired", "shutdown")
WARM_PARKED_OUTCOMES = ("parked", "claimed", "expired", "mismatch", "lost", "failed", "unavailable", "full")
UNKNOWN_TOOL = "unknown"  # the `tool` label of a function the tools file does not declare

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
FAST_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)

CALLS_ACTIVE = Gauge("gateway_calls_active", "Calls with an open carrier media stream.", registry=REGISTRY)
CALLS = Counter("gateway_calls_total", "Calls ended, by carrier, upstream provider and outcome "
                "(completed: the caller hung up; rejected, upstream_error, carrier_error, timeout, drained; "
                "abandoned: the caller hung up before the upstream session was ever ready; agent_ended: the agent "
                "hung up with end_call; transferred: moved to a person with transfer_call; idle: hung up after "
                "IDLE_HANGUP_S of silence; voicemail: an outbound call answered by a machine), and agent (the agent "
                "profile that answered: AGENTS_FILE's names, or default).",
                ["carrier", "provider", "outcome", "agent"], registry=REGISTRY)
CALL_COST = Counter("gateway_call_cost_usd_total", "What ended calls cost in Realtime tokens, in USD, by agent profile "
                    "(the tokens of each call priced by PRICES_FILE for the call's model; calls on a model without a "
                    "price add nothing).", ["agent"], registry=REGISTRY)
AGENT_RELOADS = Counter("gateway_agents_reloads_total", "Reloads of AGENTS_FILE on SIGHUP, by result (reloaded; "
                        "refused: the file was invalid and the old profiles stayed).", ["result"], registry=REGISTRY)
CALL_DURATION = Histogram("gateway_call_duration_seconds", "Media stream duration of ended calls.",
                          buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200), registry=REGISTRY)
WEBHOOKS = Counter("gateway_webhook_requests_total", "Voice webhook requests by result "
                   "(accepted, forbidden, bad_request, busy; control_document: a call-control document "
                   "served, not_found: one asked of a carrier that fetches none).", ["result"], registry=REGISTRY)
TOKENS_REJECTED = Counter("gateway_stream_tokens_rejected_total", "Media streams refused before any upstream "
                          "session was opened, by reason.", ["reason"], registry=REGISTRY)
UPSTREAM_CONNECT = Histogram("gateway_upstream_connect_seconds", "Time to a ready Realtime session, by "
                             "provider: from starting the WebSocket handshake (retries included) to "
                             "session.updated, i.e. the handshake plus our session configuration applied.",
                             ["provider"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
UPSTREAM_CONNECT_FAILURES = Counter("gateway_upstream_connect_failures_total", "Realtime sessions that could "
                                    "not be opened, by provider.", ["provider"], registry=REGISTRY)
TURN_LATENCY = Histogram("gateway_turn_latency_seconds", "From the caller's end of speech (speech_stopped, "
                         "placed on our clock) to the first answer audio sent to the carrier.",
                         buckets=LATENCY_BUCKETS, registry=REGISTRY)
HEARD_LATENCY = Histogram("gateway_heard_latency_seconds", "From the caller's end of speech to the moment the "
                          "first answer audio started playing to the caller (its mark echo minus its "
                          "length).", buckets=LATENCY_BUCKETS, registry=REGISTRY)
BARGE_INS = Counter("gateway_barge_ins_total", "Caller speech that interrupted queued or playing agent audio "
                    "or an active response.", registry=REGISTRY)
BARGE_IN_REACTION = Histogram("gateway_barge_in_reaction_seconds", "From speech_started received to the "
                              "carrier clear written to the socket.", buckets=FAST_BUCKETS, registry=REGISTRY)
TRUNCATION_HEARD = Histogram("gateway_truncation_heard_seconds", "Audio of an interrupted item the caller "
                             "heard, as sent in conversation.item.truncate.",
                             buckets=(0, 0.25, 0.5, 1, 2, 4, 8, 15, 30), registry=REGISTRY)
TRUNCATIONS_REJECTED = Counter("gateway_truncations_rejected_total", "Truncates the upstream rejected as "
                               "longer than the item's audio.", registry=REGISTRY)
AUDIO_FRAMES = Counter("gateway_audio_frames_total", "Audio messages relayed, by direction (inbound = caller "
                       "to upstream).", ["direction"], registry=REGISTRY)
AUDIO_SECONDS = Counter("gateway_audio_seconds_total", "Audio relayed in seconds, by direction.",
                        ["direction"], registry=REGISTRY)
FRAMES_DROPPED = Counter("gateway_frames_dropped_total", "Audio messages not relayed, by reason "
                         "(buffer_overflow: caller audio beyond the pre-connect buffer, also while the "
                         "upstream reconnects; stale_delta: agent audio of an interrupted response; "
                         "rate_limited: caller audio over MAX_FRAMES_PER_SECOND).", ["reason"], registry=REGISTRY)
REALTIME_TOKENS = Counter("gateway_realtime_tokens_total", "Realtime tokens from response.done usage, by "
                          "kind.", ["kind"], registry=REGISTRY)
RESPONSES = Counter("gateway_responses_total", "Realtime responses by final status.", ["status"],
                    registry=REGISTRY)
UPSTREAM_ERRORS = Counter("gateway_upstream_errors_total", "Realtime error events, by error code.", ["code"],
                          registry=REGISTRY)
CARRIER_ERRORS = Counter("gateway_carrier_protocol_errors_total", "Carrier frames that were malformed or "
                         "unexpected and ignored, by kind.", ["carrier", "kind"], registry=REGISTRY)
UPSTREAM_CONNECT_RETRIES = Counter("gateway_upstream_connect_retries_total", "Realtime handshakes retried "
                                   "after a failed attempt, by provider.", ["provider"], registry=REGISTRY)
UPSTREAM_RECONNECTS = Counter("gateway_upstream_reconnects_total", "Realtime sessions replaced during a call, by "
                              "reason (closed: the socket dropped; server_error; session_expired; stalled: it "
                              "stopped reading; recycle: renewed between turns before the session cap).",
                              ["reason"], registry=REGISTRY)
FALLBACKS = Counter("gateway_fallbacks_total", "Calls handed to the fallback because the upstream failed, by "
                    "result (redirected: Twilio plays the apology or dials the fallback number; failed: the "
                    "REST call failed; unconfigured: no REST credentials, the stream was closed).", ["result"],
                    registry=REGISTRY)
SEND_STALLS = Counter("gateway_send_stalls_total", "Sockets given up because their send buffer did not drain "
                      "within SEND_STALL_TIMEOUT_S, by side (carrier, upstream).", ["side"], registry=REGISTRY)
TOOL_CALLS = Counter("gateway_tool_calls_total", "Function calls of the model, by tool (the tools file's names "
                     "and the built-ins; unknown: a name the file does not declare) and outcome (ok, bad_arguments, "
                     "unknown_tool, http_error, timeout, too_large, failed, refused, cancelled: the call ended "
                     "first).", ["tool", "outcome"], registry=REGISTRY)
TOOL_DURATION = Histogram("gateway_tool_duration_seconds", "From the model's function call to its result, by tool.",
                          ["tool"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0),
                          registry=REGISTRY)
TRANSFERS = Counter("gateway_transfers_total", "Transfers asked for with transfer_call, by result (transferred; "
                    "refused: a destination not in the allow-list; failed: the carrier's call control failed; "
                    "unavailable: no call control for this call).", ["result"], registry=REGISTRY)
DTMF_KEYS = Counter("gateway_dtmf_keys_total", "Keypad keys, by direction (inbound: pressed by the caller; "
                    "outbound: sent to the far end with send_dtmf).", ["direction"], registry=REGISTRY)
IDLE_REPROMPTS = Counter("gateway_idle_reprompts_total", "Times the model was asked to check in on a caller silent "
                         "for IDLE_REPROMPT_S (hang-ups after IDLE_HANGUP_S: gateway_calls_total{outcome=\"idle\"}).",
                         registry=REGISTRY)
OUTBOUND_CALLS = Counter("gateway_outbound_calls_total", "Calls placed with POST /calls, by how they ended, from "
                         "the carrier's final status callback (completed; machine: completed after answering-machine "
                         "detection heard a machine; busy, no_answer, failed, canceled).", ["result"],
                         registry=REGISTRY)
OUTBOUND_REQUESTS = Counter("gateway_outbound_requests_total", "Requests to the call API (POST /calls, GET and DELETE "
                            "/calls/{id}, POST /calls/{id}/transfer) by result: placed, hung_up, transferred, or why "
                            "not (bad_request, forbidden: outside OUTBOUND_ALLOWED_PREFIXES, unauthorized, off: no "
                            "ADMIN_TOKEN, rate_limited: OUTBOUND_MAX_PER_MINUTE, busy: MAX_CONCURRENT_CALLS, draining, "
                            "unavailable: no carrier credentials, carrier_error, not_found, conflict: not live).",
                            ["result"], registry=REGISTRY)
STATUS_CALLBACKS = Counter("gateway_status_callbacks_total", "Carrier status and answering-machine callbacks of placed "
                           "calls, by result (accepted, forbidden: bad signature, bad_request, unknown_call: not "
                           "placed by this process).", ["result"], registry=REGISTRY)
RECORDINGS = Counter("gateway_recordings_total", "Call recordings (RECORDINGS_DIR) by result (written; failed: "
                     "the file could not be written, e.g. a full disk; the call is not affected).", ["result"],
                     registry=REGISTRY)
RECORDINGS_TRUNCATED = Counter("gateway_recordings_truncated_total", "Call recordings stopped early at "
                               "RECORDINGS_MAX_MINUTES.", registry=REGISTRY)
WARM_IDLE = Gauge("gateway_warm_upstream_sessions_idle", "Open, idle upstream sessions waiting in the warm pool "
                  "(WARM_UPSTREAM_SESSIONS) for a call to claim.", registry=REGISTRY)
WARM_CLAIMS = Counter("gateway_warm_upstream_claims_total", "Calls (or signed webhooks) that asked the warm pool for a "
                      "session, by result (hit: claimed one; miss: none idle, the call dialled out).", ["result"],
                      registry=REGISTRY)
WARM_DISCARDED = Counter("gateway_warm_upstream_discarded_total", "Idle warm sessions closed without a call, by reason "
                         "(closed: by the upstream; error: an error event while idle; unexpected: events while idle; "
                         "renewed: replaced before the session cap; expired: past the renewal grace; shutdown).",
                         ["reason"], registry=REGISTRY)
WARM_OPEN_FAILURES = Counter("gateway_warm_upstream_open_failures_total", "Warm pool sessions that could not be "
                             "opened (the pool backs off exponentially).", registry=REGISTRY)
WARM_PARKED = Counter("gateway_warm_upstream_parked_total", "Warm sessions configured at a signed webhook for its "
                      "call, by outcome (parked; claimed by the call's stream; expired: no stream within the stream "
                      "token's lifetime; mismatch: the stream needed another configuration; lost: closed while "
                      "parked; failed: not configured; unavailable: none idle; full: too many parked).",
                      ["outcome"], registry=REGISTRY)
LOOP_LAG = Histogram("gateway_event_loop_lag_seconds", "How late the event loop runs a timer: an overloaded "
                     "process shows here before callers hear it.", buckets=FAST_BUCKETS, registry=REGISTRY)


def initialise_labels(carriers: Iterable[str], provider: str, agents: Iterable[str] = ("default",)) -> None:
    """Create every known label value of the labelled counters at 0 (idempotent).

    A labelled series appears only when it is first touched: without this, alerts on error counters see
    no series until the first error, and `rate()` misses the increment that creates a series.
    """
    carriers, agents = tuple(carriers), tuple(agents)
    for carrier in carriers:
        for outcome in CALL_OUTCOMES:
            for agent in agents:
                CALLS.labels(carrier, provider, outcome, agent)
    for agent in agents:
        CALL_COST.labels(agent)
    for result in ("reloaded", "refused"):
        AGENT_RELOADS.labels(result)
    for result in WEBHOOK_RESULTS:
        WEBHOOKS.labels(result)
    for reason in TOKEN_REJECT_REASONS:
        TOKENS_REJECTED.labels(reason)
    UPSTREAM_CONNECT_FAILURES.labels(provider)
    UPSTREAM_CONNECT_RETRIES.labels(provider)
    for reason in DROP_REASONS:
        FRAMES_DROPPED.labels(reason)
    for direction in AUDIO_DIRECTIONS:
        AUDIO_FRAMES.labels(direction)
        AUDIO_SECONDS.labels(direction)
    for result in FALLBACK_RESULTS:
        FALLBACKS.labels(result)
    for side in STALL_SIDES:
        SEND_STALLS.labels(side)
    for reason in RECONNECT_REASONS:
        UPSTREAM_RECONNECTS.labels(reason)
    for kind in TOKEN_KINDS:
        REALTIME_TOKENS.labels(kind)
    for result in TRANSFER_RESULTS:
        TRANSFERS.labels(result)
    for result in OUTBOUND_RESULTS:
        OUTBOUND_CALLS.labels(result)
    for result in CALL_API_RESULTS:
        OUTBOUND_REQUESTS.labels(result)
    for result in STATUS_CALLBACK_RESULTS:
        STATUS_CALLBACKS.labels(result)
    for direction in DTMF_DIRECTIONS:
        DTMF_KEYS.labels(direction)
    for result in RECORDING_RESULTS:
        RECORDINGS.labels(result)
    for result in WARM_CLAIM_RESULTS:
        WARM_CLAIMS.labels(result)
    for reason in WARM_DISCARD_REASONS:
        WARM_DISCARDED.labels(reason)
    for outcome in WARM_PARKED_OUTCOMES:
        WARM_PARKED.labels(outcome)


_known_tools: set[str] = set()


def initialise_tool_labels(tools: Iterable[str]) -> None:
    """The tools of the tools file (and `unknown`): every outcome at 0, and the only `tool` label values."""
    for tool in (*tools, UNKNOWN_TOOL):
        _known_tools.add(tool)
        TOOL_DURATION.labels(tool)
        for outcome in TOOL_OUTCOMES:
            TOOL_CALLS.labels(tool, outcome)


def tool_label(name: str) -> str:
    return name if name in _known_tools else UNKNOWN_TOOL


_CODE = re.compile(r"^[a-z0-9_.]{1,64}$")
_MAX_CODES = 64
_codes_seen: set[str] = set()


def error_code_label(code: str) -> str:
    """Upstream error codes come from the server: keep the label set bounded."""
    if not _CODE.match(code):
        return "other"
    if code not in _codes_seen:
        if len(_codes_seen) >= _MAX_CODES:
            return "other"
        _codes_seen.add(code)
    return code


class CallExporter:
    """Adds what one call's stats gained since the last flush to the process counters."""

    __slots__ = (
        "_barge",
        "_dropped",
        "_dtmf",
        "_errors",
        "_frames_in",
        "_frames_out",
        "_heard",
        "_idle",
        "_in_ms",
        "_limited",
        "_out_ms",
        "_rejected",
        "_responses",
        "_stale",
        "_stats",
        "_tokens",
        "_tools",
        "_transfers",
        "_truncs",
        "_turns",
    )

    def __init__(self, stats: CallStats) -> None:
        self._stats = stats
        self._frames_in = self._frames_out = self._dropped = self._stale = self._barge = self._rejected = 0
        self._turns = self._heard = self._truncs = self._errors = self._limited = self._tools = self._transfers = 0
        self._dtmf = self._idle = 0
        self._in_ms = self._out_ms = 0.0
        self._responses: dict[str, int] = {}
        self._tokens = dict.fromkeys(TOKEN_KINDS, 0)

    def flush(self) -> None:
        s = self._stats
        _add(AUDIO_FRAMES.labels("inbound"), s.frames_in - self._frames_in)
        _add(AUDIO_FRAMES.labels("outbound"), s.frames_out - self._frames_out)
        _add(AUDIO_SECONDS.labels("inbound"), (s.audio_in_ms - self._in_ms) / 1000.0)
        _add(AUDIO_SECONDS.labels("outbound"), (s.audio_out_ms - self._out_ms) / 1000.0)
        _add(FRAMES_DROPPED.labels("buffer_overflow"), s.frames_dropped - self._dropped)
        _add(FRAMES_DROPPED.labels("stale_delta"), s.stale_deltas_dropped - self._stale)
        _add(FRAMES_DROPPED.labels("rate_limited"), s.frames_rate_limited - self._limited)
        self._limited = s.frames_rate_limited
        _add(BARGE_INS, s.barge_ins - self._barge)
        _add(TRUNCATIONS_REJECTED, s.truncates_rejected - self._rejected)
        self._frames_in, self._frames_out = s.frames_in, s.frames_out
        self._in_ms, self._out_ms = s.audio_in_ms, s.audio_out_ms
        self._dropped, self._stale = s.frames_dropped, s.stale_deltas_dropped
        self._barge, self._rejected = s.barge_ins, s.truncates_rejected
        _add(DTMF_KEYS.labels("inbound"), s.dtmf - self._dtmf)
        _add(IDLE_REPROMPTS, s.idle_reprompts - self._idle)
        self._dtmf, self._idle = s.dtmf, s.idle_reprompts
        for value in s.turn_latencies_ms[self._turns:]:
            TURN_LATENCY.observe(value / 1000.0)
        self._turns = len(s.turn_latencies_ms)
        for value in s.heard_latencies_ms[self._heard:]:
            HEARD_LATENCY.observe(value / 1000.0)
        self._heard = len(s.heard_latencies_ms)
        for _, end_ms, _sent in s.truncations[self._truncs:]:
            TRUNCATION_HEARD.observe(end_ms / 1000.0)
        self._truncs = len(s.truncations)
        for code in s.upstream_errors[self._errors:]:
            UPSTREAM_ERRORS.labels(error_code_label(code)).inc()
        self._errors = len(s.upstream_errors)
        for status, count in s.responses.items():
            _add(RESPONSES.labels(status if status in _STATUSES else "other"), count - self._responses.get(status, 0))
            self._responses[status] = count
        for kind, count in s.tokens.items():
            _add(REALTIME_TOKENS.labels(kind), count - self._tokens[kind])
            self._tokens[kind] = count
        for name, outcome, ms in s.tool_results[self._tools:]:
            tool = tool_label(name)
            TOOL_CALLS.labels(tool, outcome if outcome in TOOL_OUTCOMES else "failed").inc()
            TOOL_DURATION.labels(tool).observe(ms / 1000.0)
        self._tools = len(s.tool_results)
        for result in s.transfers[self._transfers:]:
            TRANSFERS.labels(result if result in TRANSFER_RESULTS else "failed").inc()
        self._transfers = len(s.transfers)


_STATUSES = frozenset({"completed", "cancelled", "failed", "incomplete", "in_progress"})


def _add(counter: Counter, amount: float) -> None:
    if amount > 0:
        counter.inc(amount)
