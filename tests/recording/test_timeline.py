"""Where the audio goes: exact sample positions with synthetic timestamps (8 samples per ms at 8 kHz)."""

from __future__ import annotations

import struct

from gateway.recording.timeline import GAP_MS, Stereo, caller_starts, place_agent, sample_at

RATE = 8000


def pcm(value: int, samples: int) -> bytes:
    return struct.pack(f"<{samples}h", *([value] * samples))


def values(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


def runs(data: bytes) -> list[tuple[int, int, int]]:
    """(value, first sample, end) of each run of equal samples."""
    out: list[tuple[int, int, int]] = []
    for i, v in enumerate(values(data)):
        if out and out[-1][0] == v and out[-1][2] == i:
            out[-1] = (v, out[-1][1], i + 1)
        else:
            out.append((v, i, i + 1))
    return out


def test_sample_positions_round_to_the_nearest_sample():
    assert sample_at(20.0, RATE) == 160
    assert sample_at(0.06, RATE) == 0 and sample_at(0.07, RATE) == 1
    assert sample_at(1000.0, 24000) == 24000


def test_stereo_interleaves_left_then_right():
    out = Stereo(3)
    out.put(0, 0, pcm(1, 3))
    out.put(1, 1, pcm(2, 5))  # cut at the end
    assert values(bytes(out.buffer)) == [1, 0, 1, 2, 1, 2]
    assert values(out.channel(0)) == [1, 1, 1] and values(out.channel(1)) == [0, 2, 2]


def test_caller_is_continuous_from_the_start_whatever_the_jitter():
    # 20 ms frames arriving when spoken (at 20, 40, ...); the third and fourth 300 ms late, in a burst,
    # then the stream catches up: nothing is missing, nothing moves.
    arrivals = [20.0, 40.0, 360.0, 361.0, 362.0, 363.0, 364.0, 365.0, 366.0, 367.0, 368.0, 369.0, 370.0, 371.0,
                372.0, 373.0, 374.0, 375.0, 380.0, 400.0, 420.0]
    assert caller_starts(arrivals, [160] * len(arrivals), RATE) == [160 * k for k in range(len(arrivals))]


def test_caller_audio_starting_late_starts_where_its_arrivals_put_it():
    arrivals = [1020.0 + 20.0 * k + (3.0 if k == 2 else 0.0) for k in range(5)]  # one frame a little late
    assert caller_starts(arrivals, [160] * 5, RATE) == [8000 + 160 * k for k in range(5)]


def test_caller_audio_the_carrier_never_sent_becomes_silence():
    # 200 ms of frames, then 500 ms sent nothing, then frames again on time: the rest stays 500 ms behind.
    arrivals = [20.0 * (k + 1) for k in range(10)] + [700.0 + 20.0 * (k + 1) for k in range(10)]
    starts = caller_starts(arrivals, [160] * 20, RATE)
    assert starts == [160 * k for k in range(10)] + [5600 + 160 * k for k in range(10)]


def test_caller_lateness_within_the_gap_is_latency_not_silence():
    late = GAP_MS - 20.0  # every frame this late: under the gap, placed as if on time
    arrivals = [20.0 * (k + 1) + late for k in range(10)]
    assert caller_starts(arrivals, [160] * 10, RATE) == [160 * k for k in range(10)]


def test_caller_chunks_of_any_size_follow_each_other():
    assert caller_starts([10.0, 40.0, 45.0], [80, 240, 40], RATE) == [0, 80, 320]
    assert caller_starts([], [], RATE) == []


def test_agent_chunks_queue_behind_each_other_at_real_time():
    out = Stereo(4000)
    # Sent at twice real time: 100 ms chunks every 50 ms from 100 ms; then, after the queue ran dry, one at 400 ms.
    events = [(100.0, pcm(1, 800)), (150.0, pcm(2, 800)), (200.0, pcm(3, 800)), (400.0, pcm(4, 800))]
    assert place_agent(out, events, RATE) == 4000
    assert runs(out.channel(1)) == [(0, 0, 800), (1, 800, 1600), (2, 1600, 2400), (3, 2400, 3200),
                                    (4, 3200, 4000)]


def test_agent_audio_starts_when_sent_if_nothing_is_queued():
    out = Stereo(4000)
    events = [(100.0, pcm(1, 800)), (350.0, pcm(2, 800))]  # the first ended at 200 ms: a 150 ms pause
    place_agent(out, events, RATE)
    assert runs(out.channel(1)) == [(0, 0, 800), (1, 800, 1600), (0, 1600, 2800), (2, 2800, 3600),
                                    (0, 3600, 4000)]


def test_a_clear_cuts_what_was_not_yet_played():
    out = Stereo(8000)
    # 300 ms of audio sent at once at 100 ms (plays 100-400 ms); cleared at 250 ms: 150 ms heard.
    events = [(100.0, pcm(1, 800)), (100.0, pcm(2, 800)), (100.0, pcm(3, 800)), (250.0, None),
              (500.0, pcm(4, 800))]  # the next answer plays when sent
    assert place_agent(out, events, RATE) == 4800
    assert runs(out.channel(1)) == [(0, 0, 800), (1, 800, 1600), (2, 1600, 2000), (0, 2000, 4000),
                                    (4, 4000, 4800), (0, 4800, 8000)]


def test_audio_sent_after_a_clear_starts_at_once():
    out = Stereo(4000)
    events = [(0.0, pcm(1, 1600)), (100.0, None), (100.0, pcm(2, 160))]  # queued until 200 ms; cleared at 100
    place_agent(out, events, RATE)
    assert runs(out.channel(1)) == [(1, 0, 800), (2, 800, 960), (0, 960, 4000)]


def test_a_clear_with_nothing_queued_changes_nothing():
    out = Stereo(2000)
    place_agent(out, [(0.0, pcm(1, 800)), (150.0, None)], RATE)  # played out at 100 ms
    assert runs(out.channel(1)) == [(1, 0, 800), (0, 800, 2000)]


def test_the_channels_do_not_touch_each_other():
    out = Stereo(1600)
    for start in caller_starts([20.0 * (i + 1) for i in range(10)], [160] * 10, RATE):
        out.put(0, start, pcm(7, 160))
    place_agent(out, [(50.0, pcm(9, 1600)), (100.0, None)], RATE)
    assert runs(out.channel(0)) == [(7, 0, 1600)]
    assert runs(out.channel(1)) == [(0, 0, 400), (9, 400, 800), (0, 800, 1600)]
