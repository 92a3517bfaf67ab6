from __future__ import annotations

from pathlib import Path

import pytest

from voxserve.vocoder.load_meter import HostCpuLoad, LoadMeter


def test_load_is_the_busy_fraction_of_the_window() -> None:
    meter = LoadMeter(window_seconds=1.0)
    assert meter.load(10.0) == 0.0
    meter.record(9.2, 9.5)
    meter.record(9.6, 9.8)
    assert meter.load(10.0) == pytest.approx(0.5)
    # A forward that began before the window counts only inside it.
    assert meter.load(10.3) == pytest.approx(0.2 + 0.2)
    assert meter.load(11.0) == 0.0


def test_load_is_the_busy_share_of_every_lane() -> None:
    meter = LoadMeter(window_seconds=1.0, lanes=2)
    meter.record(9.0, 10.0)
    assert meter.load(10.0) == pytest.approx(0.5), "one of two lanes busy all along"
    meter.record(9.5, 10.0)
    assert meter.load(10.0) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="lanes"):
        LoadMeter(lanes=0)


def test_load_is_capped_at_one_and_the_window_must_be_positive() -> None:
    meter = LoadMeter(window_seconds=0.5)
    meter.record(0.0, 2.0)
    assert meter.load(2.0) == 1.0
    with pytest.raises(ValueError, match="window_seconds"):
        LoadMeter(window_seconds=0)


def _stat(path: Path, user: int, idle: int) -> None:
    # user nice system idle iowait irq softirq steal
    path.write_text(f"cpu  {user} 0 0 {idle} 0 0 0 0 0 0\ncpu0 {user} 0 0 {idle} 0 0 0 0 0 0\n")


def test_host_cpu_load_is_the_busy_share_between_readings(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    _stat(stat, user=100, idle=100)
    host = HostCpuLoad(interval_seconds=0.5, stat_path=stat)
    assert host(0.0) == 0.0  # one reading: nothing to compare with yet
    _stat(stat, user=175, idle=125)
    assert host(0.2) == 0.0  # within the interval: the last value
    assert host(1.0) == pytest.approx(0.75)
    _stat(stat, user=175, idle=225)
    assert host(2.0) == 0.0


def test_host_cpu_load_without_proc_stat_is_zero(tmp_path: Path) -> None:
    host = HostCpuLoad(stat_path=tmp_path / "missing")
    assert host(0.0) == 0.0 and host(1.0) == 0.0
    assert HostCpuLoad()(0.0) == 0.0  # the real /proc/stat: first reading
