"""The book of placed calls: both ids, callbacks out of order, the final result, bounds, the rate window
(a fake clock: exact seconds)."""

from __future__ import annotations

from gateway.outbound.calls import OutboundBook, OutboundCall, new_id


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def record(oid: str | None = None) -> OutboundCall:
    return OutboundCall(oid=oid or new_id(), carrier="twilio", to="+14155550100", from_number="+14155550199",
                        agent="default")


def test_a_call_is_found_by_either_id():
    book = OutboundBook()
    call = record()
    book.add(call)
    assert call.oid.startswith("out_") and len(call.oid) == 28
    assert book.get(call.oid) is call and book.get("CA1") is None and book.get(None) is None
    book.bind(call, "CA1")
    assert book.get("CA1") is call and book.get(call.oid) is call
    book.remove(call)
    assert book.get("CA1") is None and book.get(call.oid) is None and len(book) == 0


def test_progress_keeps_order_and_finishes_once():
    call = record()
    assert not call.progress("ringing", None, 1)
    assert not call.progress("initiated", None, 0)  # late: in the history, the status stays
    assert call.status == "ringing"
    assert not call.progress("in-progress", None, 2)
    assert call.progress("completed", 17, 3) and call.result == "completed" and call.duration_s == 17
    assert not call.progress("completed", 17, 3)  # a repeat changes nothing
    assert [h["status"] for h in call.history] == ["ringing", "initiated", "in-progress", "completed", "completed"]


def test_results():
    for status, result in [("busy", "busy"), ("no-answer", "no_answer"), ("failed", "failed"),
                           ("canceled", "canceled")]:
        call = record()
        assert call.progress(status, 0, None) and call.result == result
    machine = record()
    machine.amd("machine", "machine_end_beep")
    machine.progress("completed", 30, None)
    assert machine.result == "machine" and machine.describe()["answered_by_detail"] == "machine_end_beep"


def test_finished_records_are_kept_a_while_and_bounded():
    clock = Clock()
    book = OutboundBook(clock, keep_finished=2, keep_finished_s=60)
    calls = [record() for _ in range(4)]
    for call in calls:
        book.add(call)
        call.progress("completed", 1, None)
        book.finished(call)
    assert [c.oid for c in calls if book.get(c.oid)] == [c.oid for c in calls[2:]]  # the oldest went first
    live = record()
    book.add(live)
    clock.t += 61
    book.add(record())
    assert all(book.get(c.oid) is None for c in calls) and book.get(live.oid) is live


def test_a_live_stream_keeps_its_record():
    clock = Clock()
    book = OutboundBook(clock, keep_finished=0, keep_finished_s=0)
    call = record()
    book.add(call)
    session = object()
    call.attach(session)
    call.progress("completed", 5, None)
    book.finished(call)
    assert book.get(call.oid) is call and call.live
    call.detach(session, "completed")
    assert not call.live and call.stream_outcome == "completed" and call.streamed


def test_the_rate_window_slides():
    clock = Clock()
    book = OutboundBook(clock)
    assert book.retry_after(0) is None
    book.count_placed()
    clock.t += 20
    book.count_placed()
    assert book.retry_after(3) is None
    assert book.retry_after(2) == 40  # the first placed leaves the window 40 s from now
    clock.t += 40
    assert book.retry_after(2) is None
