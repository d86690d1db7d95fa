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
