"""PlaybackTracker: the caller's playback position, to the millisecond, on a fake clock."""

from gateway.core.playback import PlaybackTracker


def send(tracker: PlaybackTracker, item: str, chunks: list[float], at: float) -> list[str]:
    return [tracker.sent(item, ms, at) for ms in chunks]


def heard(tracker: PlaybackTracker, now: float) -> dict[str, float]:
    return {h.item_id: h.heard_ms for h in tracker.heard(now)}


def test_position_advances_at_real_time_from_the_first_send():
    t = PlaybackTracker()
    send(t, "A", [100, 100, 100], at=1000)
    assert t.position(1000) == 0
    assert t.position(1150) == 150
    assert t.position(5000) == 300  # never past what was sent
    assert heard(t, 1240) == {"A": 240}


def test_mark_echo_reanchors_a_late_carrier():
    t = PlaybackTracker()
    m1, _m2, _m3 = send(t, "A", [100, 100, 100], at=0)
    assert t.mark_echoed(m1, 130)  # 30 ms later than the estimate
    assert t.position(180) == 150
    assert heard(t, 180) == {"A": 150}


def test_underrun_waits_for_audio_that_had_not_arrived():
    t = PlaybackTracker()
    send(t, "A", [100], at=0)
    send(t, "A", [100], at=300)  # the queue ran dry from 100 to 300
    assert t.position(250) == 100
    assert t.position(350) == 150
    assert not t.is_playing(1000) or t.position(1000) == 200


def test_two_items_share_one_timeline():
    t = PlaybackTracker()
    send(t, "A", [100, 100], at=0)
    send(t, "B", [100, 100, 100], at=0)
    assert heard(t, 350) == {"A": 200, "B": 150}


def test_marks_flushed_by_clear_are_not_played():
    t = PlaybackTracker()
    marks = send(t, "A", [100, 100, 100], at=0)
    assert t.mark_echoed(marks[0], 100)
    t.clear()
    # The carrier echoes every pending mark when it clears: none of them was played.
    assert not t.mark_echoed(marks[1], 101)
    assert not t.mark_echoed(marks[2], 101)
    assert t.position(101) == 0
    assert heard(t, 500) == {}


def test_fully_heard_finished_item_is_forgotten():
    t = PlaybackTracker()
    m = send(t, "A", [100, 100], at=0)
    t.audio_done("A")
    t.mark_echoed(m[0], 100)
    t.mark_echoed(m[1], 200)
    assert heard(t, 300) == {}
    assert not t.is_playing(300)


def test_is_playing_until_the_last_mark_comes_back():
    t = PlaybackTracker()
    m = send(t, "A", [100], at=0)
    assert t.is_playing(50)
    assert t.is_playing(150)  # by estimate it is over, but the carrier has not confirmed it
    t.mark_echoed(m[0], 160)
    assert not t.is_playing(161)


def test_unknown_and_malformed_marks_are_ignored():
    t = PlaybackTracker()
    send(t, "A", [100], at=0)
    assert not t.mark_echoed("garbage", 10)
    assert not t.mark_echoed("0.999", 10)
    assert not t.mark_echoed("7.1", 10)
    assert t.position(50) == 50


# --- clock mode: a carrier without marks --------------------------------------------------------


def test_clock_mode_never_asks_for_a_mark():
    t = PlaybackTracker(marks=False)
    assert send(t, "A", [20] * 20, at=0) == [None] * 20
    assert t.sent("B", 20, 10, mark=True) is None  # a new item, even when a mark is asked for
    assert send(t, "B", [100, 100], at=500) == [None, None]


def test_clock_mode_is_playing_follows_the_clock():
    t = PlaybackTracker(marks=False)
    send(t, "A", [1000], at=0)
    assert t.is_playing(0)
    assert t.is_playing(999)
    assert not t.is_playing(1000)
    with_marks = PlaybackTracker()
    send(with_marks, "A", [1000], at=0)
    assert with_marks.is_playing(1000)  # with marks it waits for the echo


def test_clock_mode_underrun_delays_the_position():
    t = PlaybackTracker(marks=False)
    send(t, "A", [100, 100, 100, 100, 100], at=0)
    send(t, "A", [300], at=700)  # the queue ran dry from 500 to 700
    assert t.position(700) == 500
    assert t.position(1000) == 800
    assert heard(t, 1000) == {"A": 800}
    assert t.is_playing(999.9)
    assert not t.is_playing(1000)


def test_clock_mode_heard_on_barge_in_is_exact_and_played_items_are_pruned():
    t = PlaybackTracker(marks=False)
    send(t, "A", [100] * 5, at=0)
    t.audio_done("A")
    send(t, "B", [100] * 3, at=0)
    assert heard(t, 640) == {"A": 500, "B": 140}
    # More of B at 600: what played by then is pruned, and A, finished and heard whole, is forgotten.
    send(t, "B", [100], at=600)
    assert heard(t, 640) == {"B": 140}
    (b,) = t.heard(640)
    assert (b.sent_ms, b.audio_done) == (400, False)
    assert len(t._chunks) == 3
    t.clear()  # barge-in
    assert t.position(640) == 0 and heard(t, 700) == {} and not t.is_playing(700)


def test_clock_mode_keeps_the_chunk_queue_short_over_a_long_stream():
    t = PlaybackTracker(marks=False)
    send(t, "A", [20] * 10, at=0)  # 200 ms ahead, then real time for a minute
    longest = 0
    for k in range(3000):
        assert t.sent("A", 20, k * 20) is None
        longest = max(longest, len(t._chunks), len(t._items["A"].chunks))
    assert longest == 11  # the 200 ms lead and the chunk just sent
    assert heard(t, 59_990) == {"A": 59_990}
    assert t.is_playing(60_199) and not t.is_playing(60_200)
    (a,) = t.heard(60_200)
    assert (a.heard_ms, a.sent_ms) == (60_200, 60_200)
