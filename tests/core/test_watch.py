"""FrameRate and StallWatch: the call's housekeeping clocks, exact on a fake clock (ms)."""

from gateway.core.watch import FrameRate, StallWatch


def test_frame_rate_allows_the_limit_per_one_second_window():
    rate = FrameRate(3)
    assert [rate.allow(t) for t in (0, 100, 200, 300, 999)] == [True, True, True, False, False]
    # The window [0, 1000) is over: the next one starts at the first frame after it.
    assert [rate.allow(t) for t in (1000, 1100, 1200, 1999.9)] == [True, True, True, False]
    assert rate.allow(2000)


def test_frame_rate_window_restarts_at_the_first_frame_after_it_ends():
    rate = FrameRate(2)
    assert [rate.allow(t) for t in (0, 10, 20)] == [True, True, False]
    # Nothing from 20 to 1500: the new window is [1500, 2500), not [1000, 2000) nor [2000, 3000).
    assert [rate.allow(t) for t in (1500, 1600, 2400)] == [True, True, False]
    assert [rate.allow(t) for t in (2500, 2600, 2700)] == [True, True, False]


def test_frame_rate_at_exactly_the_limit_drops_nothing():
    rate = FrameRate(50)
    assert all(rate.allow(i * 20) for i in range(500))  # 10 s of 20 ms frames


def test_frame_rate_zero_is_unlimited():
    rate = FrameRate(0)
    assert all(rate.allow(0) for _ in range(100_000))


def test_stall_watch_reports_only_once_the_timeout_is_reached_continuously():
    watch = StallWatch(10_000)
    assert watch.update(True, 1000) is None  # backed up since 1000
    assert watch.update(True, 5000) is None
    assert watch.update(True, 10_999) is None
    assert watch.update(True, 11_000) == 10_000
    assert watch.update(True, 12_500) == 11_500  # it keeps saying so while it stays backed up


def test_stall_watch_restarts_when_the_buffer_drains():
    watch = StallWatch(10_000)
    assert watch.update(True, 0) is None
    assert watch.update(True, 9000) is None
    assert watch.update(False, 9500) is None  # drained: the count starts over
    assert watch.update(True, 10_000) is None
    assert watch.update(True, 19_999) is None
    assert watch.update(True, 20_000) == 10_000


def test_stall_watch_reset():
    watch = StallWatch(1000)
    watch.update(True, 0)
    assert watch.update(True, 1000) == 1000
    watch.reset()
    assert watch.update(True, 1500) is None
    assert watch.update(True, 2499) is None
    assert watch.update(True, 2500) == 1000
