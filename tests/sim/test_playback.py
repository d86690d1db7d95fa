"""TwilioPlayback with a fake clock: exact numbers."""

from __future__ import annotations

import math

from gateway.sim.playback import Segment, TwilioPlayback


def audio(ms: int, byte: int = 0x10) -> bytes:
    return bytes([byte]) * (ms * 8)


def test_mark_echoed_exactly_when_its_audio_ends() -> None:
    pb = TwilioPlayback()
    assert pb.enqueue_audio(audio(100), 0.0) == 0.0
    assert pb.enqueue_mark("a", 0.0) == []
    assert pb.enqueue_audio(audio(50), 10.0) == 100.0  # queued behind the first chunk
    assert pb.enqueue_mark("b", 10.0) == []
    assert pb.next_due_ms() == 100.0
    assert pb.advance(99.999) == []
    assert pb.advance(100.0) == ["a"]
    assert pb.next_due_ms() == 150.0
    assert pb.advance(149.9) == []
    assert pb.advance(150.0) == ["b"]
    assert pb.next_due_ms() is None
    assert pb.advance(1000.0) == []  # each mark once
    assert pb.marks_echoed == ["a", "b"] and pb.marks_flushed == []


def test_marks_due_in_order_when_advanced_late() -> None:
    pb = TwilioPlayback()
    for i in range(3):
        pb.enqueue_audio(audio(20), 0.0)
        pb.enqueue_mark(f"m{i}", 0.0)
    assert pb.advance(45.0) == ["m0", "m1"]
    # a new mark while idle comes after the earlier due ones, all at once
    assert pb.enqueue_mark("late", 70.0) == ["m2", "late"]


def test_mark_echoed_immediately_when_idle() -> None:
    pb = TwilioPlayback()
    assert pb.enqueue_mark("first", 5.0) == ["first"]
    pb.enqueue_audio(audio(40), 10.0)
    assert pb.enqueue_mark("x", 49.0) == []
    assert pb.enqueue_mark("y", 60.0) == ["x", "y"]  # queue ran dry at 50: x due, y immediate
    assert pb.next_due_ms() is None


def test_gap_audio_starts_at_arrival() -> None:
    pb = TwilioPlayback()
    assert pb.enqueue_audio(audio(100, 1), 0.0) == 0.0
    assert pb.is_playing(99.0) and not pb.is_playing(100.0)
    assert pb.idle_ms(130.0) == 30.0
    assert pb.enqueue_audio(audio(60, 2), 130.0) == 130.0  # not at 100: the queue had run dry
    pb.enqueue_mark("end", 131.0)
    assert pb.advance(189.9) == [] and pb.advance(190.0) == ["end"]
    assert pb.finished_segments(200.0) == [
        Segment(0.0, 100.0, 100.0, False),
        Segment(130.0, 190.0, 60.0, False),
    ]
    assert pb.played_audio(200.0) == audio(100, 1) + audio(60, 2)
    timeline = pb.played_timeline(200.0)
    assert timeline == audio(100, 1) + b"\xff" * (30 * 8) + audio(60, 2) + b"\xff" * (10 * 8)


def test_audio_arriving_while_playing_extends_the_segment() -> None:
    pb = TwilioPlayback()
    pb.enqueue_audio(audio(100), 0.0)
    pb.enqueue_audio(audio(100), 99.0)
    assert pb.current_segment(150.0) == Segment(0.0, 200.0, 150.0, False)
    assert pb.finished_segments(250.0) == [Segment(0.0, 200.0, 200.0, False)]
    assert pb.current_segment(250.0) is None


def test_clear_mid_segment_reports_played_ms_and_flushes_pending_marks() -> None:
    pb = TwilioPlayback()
    pb.enqueue_audio(audio(200, 1), 1000.0)
    pb.enqueue_mark("m1", 1000.0)  # due 1200
    pb.enqueue_audio(audio(200, 2), 1001.0)
    pb.enqueue_mark("m2", 1001.0)  # due 1400
    pb.enqueue_audio(audio(200, 3), 1002.0)
    pb.enqueue_mark("m3", 1002.0)  # due 1600
    assert pb.advance(1250.0) == ["m1"]
    flushed, played = pb.clear(1312.5)
    assert flushed == ["m2", "m3"]
    assert played == 312.5
    assert not pb.is_playing(1312.5) and pb.next_due_ms() is None
    assert pb.finished_segments(1400.0) == [Segment(1000.0, 1312.5, 312.5, True)]
    # byte-exact: 200 ms of chunk 1, then 112.5 ms = 900 bytes of chunk 2, nothing of chunk 3
    assert pb.played_audio(5000.0) == audio(200, 1) + bytes([2]) * 900
    assert pb.marks_echoed == ["m1"] and pb.marks_flushed == ["m2", "m3"]
    # new audio after the clear starts a fresh segment at its arrival
    assert pb.enqueue_audio(audio(10, 4), 1320.0) == 1320.0
    assert pb.played_audio(1330.0) == audio(200, 1) + bytes([2]) * 900 + audio(10, 4)


def test_clear_keeps_marks_already_due_for_advance() -> None:
    pb = TwilioPlayback()
    pb.enqueue_audio(audio(20), 0.0)
    pb.enqueue_mark("done", 0.0)
    pb.enqueue_audio(audio(20), 0.0)
    pb.enqueue_mark("pending", 0.0)
    flushed, played = pb.clear(30.0)  # "done" was due at 20 but not advanced yet
    assert flushed == ["pending"] and played == 30.0
    assert pb.advance(30.0) == ["done"]


def test_clear_while_idle() -> None:
    pb = TwilioPlayback()
    assert pb.clear(10.0) == ([], 0.0)
    pb.enqueue_audio(audio(20), 10.0)
    assert pb.clear(50.0) == ([], 0.0)
    assert pb.finished_segments(50.0) == [Segment(10.0, 30.0, 20.0, False)]
    assert pb.played_audio(50.0) == audio(20)


def test_clear_before_a_chunk_started_drops_it() -> None:
    pb = TwilioPlayback()
    pb.enqueue_audio(audio(10, 1), 0.0)
    pb.enqueue_audio(audio(10, 2), 0.0)
    flushed, played = pb.clear(10.0)
    assert played == 10.0 and flushed == []
    assert pb.played_audio(100.0) == audio(10, 1)


def test_fractional_times_and_odd_sizes() -> None:
    pb = TwilioPlayback()
    pb.enqueue_audio(b"\x01" * 13, 0.25)  # 1.625 ms
    assert pb.busy_until_ms == 1.875
    assert pb.played_audio(1.0) == b"\x01" * 6  # 0.75 ms = 6 bytes
    assert pb.queued_ms(1.0) == 0.875
    assert pb.enqueue_mark("m", 1.0) == [] and pb.advance(1.875) == ["m"]
    assert pb.idle_ms(2.0) == 0.125


def test_idle_before_anything() -> None:
    pb = TwilioPlayback()
    assert not pb.is_playing(0.0)
    assert math.isinf(pb.idle_ms(0.0))
    assert pb.played_audio(100.0) == b"" and pb.current_segment(0.0) is None
