"""The calls this process placed: one `OutboundCall` record each, from `POST /calls` to its last status
callback, in a bounded book keyed by both ids (the gateway's own `out_...` id, known before the carrier
names the call, and the carrier's CallSid).

No I/O: the HTTP side (`http/outbound.py`, `http/status.py`, the media socket) reads and updates records;
times are passed in or read from the wall clock for the record only.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.carriers.base import FINAL_STATUSES

KEEP_FINISHED = 500  # finished records kept for GET /calls/{id}, the oldest dropped first
KEEP_FINISHED_S = 3600.0  # ... and for at most this long
MAX_LIVE = 10000  # records not finished (a carrier that never calls back is forgotten after its ring timeout)
RATE_WINDOW_S = 60.0

# The final status of a placed call -> its `result` (gateway_outbound_calls_total{result}); a call
# completed after a machine answered counts as `machine`.
RESULTS = ("completed", "machine", "busy", "no_answer", "failed", "canceled")
_RESULT_OF = {"completed": "completed", "busy": "busy", "no-answer": "no_answer", "failed": "failed",
              "canceled": "canceled"}


def new_id() -> str:
    """The gateway's id of a call it places: the stream token's subject until the carrier names the call."""
    return "out_" + secrets.token_hex(12)


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass
class OutboundCall:
    oid: str
    carrier: str
    to: str
    from_number: str
    agent: str
    variables: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    machine_detection: bool = False
    created_at: str = field(default_factory=_now_iso)
    created_mono: float = 0.0
    call_sid: str | None = None
    status: str = "queued"
    history: list[dict[str, Any]] = field(default_factory=list)  # {"status", "at", "duration_s"?}
    answered_by: str | None = None  # human | machine | unknown (answering-machine detection)
    answered_by_detail: str | None = None  # the carrier's word for it (machine_end_beep, ...)
    duration_s: int | None = None  # connected time, from the final status callback
    result: str | None = None  # one of RESULTS once finished
    ended_by: str | None = None  # "api" when DELETE /calls/{id} ended it
    session: Any = None  # the live media session (http.media.MediaSession) while its stream runs here
    streamed: bool = False  # a media stream started for it in this process
    stream_outcome: str | None = None  # the stream's outcome, once it ended
    finished_mono: float | None = None
    _last_sequence: int = -1

    @property
    def finished(self) -> bool:
        return self.result is not None

    @property
    def live(self) -> bool:
        """Its media stream is open here."""
        return self.session is not None

    def progress(self, status: str | None, duration_s: int | None, sequence: int | None) -> bool:
        """A status callback. Callbacks may arrive out of order (their sequence number says): an older one
        is added to the history but does not change the status. True when the call has just finished."""
        if status is None:
            return False
        entry: dict[str, Any] = {"status": status, "at": _now_iso()}
        if duration_s is not None:
            entry["duration_s"] = duration_s
        self.history.append(entry)
        if duration_s is not None:
            self.duration_s = duration_s
        stale = sequence is not None and sequence < self._last_sequence
        if sequence is not None:
            self._last_sequence = max(self._last_sequence, sequence)
        if self.finished or (stale and status not in FINAL_STATUSES):
            return False
        self.status = status
        if status in FINAL_STATUSES:
            result = _RESULT_OF[status]
            self.result = "machine" if result == "completed" and self.answered_by == "machine" else result
            return True
        return False

    def amd(self, answered_by: str, detail: str | None) -> None:
        self.answered_by, self.answered_by_detail = answered_by, detail
        self.history.append({"answered_by": answered_by, "detail": detail, "at": _now_iso()})

    def attach(self, session: Any) -> None:
        self.session, self.streamed = session, True

    def detach(self, session: Any, outcome: str | None) -> None:
        if self.session is session:
            self.session, self.stream_outcome = None, outcome

    def describe(self) -> dict[str, Any]:
        """The record as GET /calls/{id} and the call summary show it."""
        return {"id": self.call_sid, "outbound_id": self.oid, "direction": "outbound", "carrier": self.carrier,
                "to": self.to, "from": self.from_number, "agent": self.agent, "status": self.status,
                "result": self.result, "answered_by": self.answered_by, "answered_by_detail": self.answered_by_detail,
                "machine_detection": self.machine_detection, "duration_s": self.duration_s,
                "created_at": self.created_at, "history": list(self.history), "metadata": self.metadata,
                "variables": sorted(self.variables), "streamed": self.streamed, "stream_outcome": self.stream_outcome,
                "ended_by": self.ended_by}


class OutboundBook:
    """This process's placed calls, by either id; bounded. Also the OUTBOUND_MAX_PER_MINUTE window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, keep_finished: int = KEEP_FINISHED,
                 keep_finished_s: float = KEEP_FINISHED_S) -> None:
        self.clock = clock
        self.keep_finished = keep_finished
        self.keep_finished_s = keep_finished_s
        self._by_id: dict[str, OutboundCall] = {}  # oid and CallSid -> record
        self._records: collections.OrderedDict[str, OutboundCall] = collections.OrderedDict()  # by oid, oldest first
        self._placed: collections.deque[float] = collections.deque()  # when each call of the window was placed

    def __len__(self) -> int:
        return len(self._records)

    def get(self, call_id: str | None) -> OutboundCall | None:
        return self._by_id.get(call_id) if call_id else None

    def add(self, call: OutboundCall) -> None:
        call.created_mono = self.clock()
        self._records[call.oid] = call
        self._by_id[call.oid] = call
        self._prune()

    def bind(self, call: OutboundCall, call_sid: str) -> None:
        """The carrier named the call."""
        if call.call_sid and call.call_sid != call_sid:
            self._by_id.pop(call.call_sid, None)
        call.call_sid = call_sid
        self._by_id[call_sid] = call

    def remove(self, call: OutboundCall) -> None:
        """Forget a call the carrier never took (its creation failed)."""
        self._records.pop(call.oid, None)
        for key in (call.oid, call.call_sid):
            if key and self._by_id.get(key) is call:
                del self._by_id[key]

    def finished(self, call: OutboundCall) -> None:
        call.finished_mono = self.clock()
        self._prune()

    def _prune(self) -> None:
        now = self.clock()
        done = [c for c in self._records.values() if c.finished and not c.live]
        expired = {c.oid for c in done if now - (c.finished_mono or now) > self.keep_finished_s}
        excess = len(done) - self.keep_finished
        if excess > 0:
            expired.update(c.oid for c in done[:excess])
        live = len(self._records) - len(done)
        if live > MAX_LIVE:  # calls no callback ever finished: the oldest go first
            expired.update([c.oid for c in self._records.values() if not c.finished][: live - MAX_LIVE])
        for oid in expired:
            self.remove(self._records[oid])

    # --- OUTBOUND_MAX_PER_MINUTE ------------------------------------------------------------------

    def retry_after(self, limit: int) -> int | None:
        """Seconds until one more call fits in the sliding minute (None: it fits now; limit 0: no limit)."""
        if limit <= 0:
            return None
        now = self.clock()
        while self._placed and now - self._placed[0] >= RATE_WINDOW_S:
            self._placed.popleft()
        if len(self._placed) < limit:
            return None
        return max(1, math.ceil(self._placed[0] + RATE_WINDOW_S - now))

    def count_placed(self) -> None:
        self._placed.append(self.clock())
