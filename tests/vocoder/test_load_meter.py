from __future__ import annotations

import pytest

from voxserve.vocoder.load_meter import LoadMeter


def test_load_is_the_busy_fraction_of_the_window() -> None:
    meter = LoadMeter(window_seconds=1.0)
    assert meter.load(10.0) == 0.0
    meter.record(9.2, 9.5)
    meter.record(9.6, 9.8)
    assert meter.load(10.0) == pytest.approx(0.5)
    # A forward that began before the window counts only inside it.
    assert meter.load(10.3) == pytest.approx(0.2 + 0.2)
    assert meter.load(11.0) == 0.0


def test_load_is_capped_at_one_and_the_window_must_be_positive() -> None:
    meter = LoadMeter(window_seconds=0.5)
    meter.record(0.0, 2.0)
    assert meter.load(2.0) == 1.0
    with pytest.raises(ValueError, match="window_seconds"):
        LoadMeter(window_seconds=0)
