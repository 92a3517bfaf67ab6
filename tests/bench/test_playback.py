"""The playback model on hand-computed schedules (16 kHz: 1600 samples = 100 ms)."""

from __future__ import annotations

import pytest

from bench.playback import Playback, underruns

RATE = 16_000
MS100 = 1600  # samples in 100 ms


def test_no_arrivals_is_silence() -> None:
    assert underruns([], RATE) == Playback(count=0, wait_seconds=0.0, audio_seconds=0.0)


def test_audio_arriving_ahead_never_stalls() -> None:
    # Each 100 ms chunk arrives 50 ms after the previous one: the buffer keeps growing.
    arrivals = [(1.0 + 0.05 * i, MS100) for i in range(10)]
    result = underruns(arrivals, RATE)
    assert result.count == 0
    assert result.wait_seconds == 0.0
    assert result.audio_seconds == pytest.approx(1.0)


def test_arrival_exactly_at_buffer_end_is_not_a_stall() -> None:
    # 0.1 s chunks arriving every 0.1 s: the buffer empties exactly as the next one lands.
    arrivals = [(0.1 * i, MS100) for i in range(20)]
    assert underruns(arrivals, RATE).count == 0


def test_one_late_chunk_is_one_underrun_of_the_gap() -> None:
    # Play starts at 0.5 s with 100 ms buffered, so it runs dry at 0.6 s; the next chunk lands at
    # 0.85 s: a 250 ms stall.
    result = underruns([(0.5, MS100), (0.85, MS100)], RATE)
    assert result.count == 1
    assert result.wait_seconds * 1000 == pytest.approx(250.0)
    assert result.audio_seconds == pytest.approx(0.2)


def test_several_underruns_and_the_schedule_shifts_after_each() -> None:
    arrivals = [
        (0.0, MS100),  # plays 0.0-0.1
        (0.05, MS100),  # buffered, plays 0.1-0.2
        (0.3, MS100),  # dry at 0.2 -> stall 100 ms, plays 0.3-0.4
        (0.35, 2 * MS100),  # buffered, plays 0.4-0.6
        (0.6, MS100),  # on time, plays 0.6-0.7
        (1.0, MS100),  # dry at 0.7 -> stall 300 ms, plays 1.0-1.1
        (1.15, MS100),  # dry at 1.1 -> stall 50 ms
    ]
    result = underruns(arrivals, RATE)
    assert result.count == 3
    assert result.wait_seconds == pytest.approx(0.45)
    assert result.audio_seconds == pytest.approx(0.8)


def test_zero_sample_messages_are_ignored() -> None:
    # An empty message neither starts playback nor refills the buffer.
    arrivals = [(0.0, 0), (0.2, MS100), (0.25, 0), (0.3, MS100)]
    result = underruns(arrivals, RATE)
    assert (result.count, result.wait_seconds) == (0, 0.0)
    assert result.audio_seconds == pytest.approx(0.2)


def test_slack_forgives_short_stalls_only() -> None:
    # Dry at 0.1 s -> 20 ms stall, plays 0.12-0.22; dry at 0.22 s -> 200 ms stall.
    arrivals = [(0.0, MS100), (0.12, MS100), (0.42, MS100)]
    strict = underruns(arrivals, RATE)
    assert strict.count == 2
    assert strict.wait_seconds == pytest.approx(0.22)
    lenient = underruns(arrivals, RATE, slack_seconds=0.05)
    assert lenient.count == 1
    assert lenient.wait_seconds == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("arrivals", "rate", "slack"),
    [
        ([(1.0, 10), (0.5, 10)], RATE, 0.0),
        ([(0.0, -1)], RATE, 0.0),
        ([(0.0, 10)], 0, 0.0),
        ([(0.0, 10)], RATE, -0.1),
    ],
)
def test_bad_input_is_rejected(arrivals: list[tuple[float, int]], rate: int, slack: float) -> None:
    with pytest.raises(ValueError):
        underruns(arrivals, rate, slack_seconds=slack)
