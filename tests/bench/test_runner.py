"""The benchmark runner: levels measured against a live gateway, and the whole comparison (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.corpus import load_corpus
from bench.report import read_json
from bench.runner import BenchSettings, measure_system, run_bench, running_system
from voxserve.families.pack import Pack
from voxserve.stack import LocalStack


def test_measure_system_reports_each_level(stack: LocalStack) -> None:
    settings = BenchSettings(concurrency=(1, 2), requests_per_client=1, max_tokens=30, warmup_requests=1)
    texts = [t for t in load_corpus() if t.kind == "short"]
    levels = measure_system(stack.ports.address("gateway"), texts, settings)
    assert [lv.concurrency for lv in levels] == [1, 2]
    assert [lv.streams for lv in levels] == [1, 2]
    assert all(lv.errors == 0 and lv.ttfa_p50 is not None and lv.ttfa_p50 > 0 for lv in levels)
    # 30 tokens of 320 samples at 16 kHz per stream.
    assert levels[1].audio_seconds == pytest.approx(2 * 30 * 320 / 16000)


def test_an_unknown_system_is_refused(tiny_pack: Pack, tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="system 'nope' is unknown"),
        running_system("nope", tiny_pack, BenchSettings(), tmp_path),
    ):
        pass


@pytest.mark.slow
def test_one_invocation_compares_all_three_systems(tiny_pack: Pack, tmp_path: Path) -> None:
    settings = BenchSettings(concurrency=(1, 2), requests_per_client=1, max_tokens=60, scaling=False)
    run = run_bench(tiny_pack, settings, tmp_path)
    assert set(run.systems) == {"voxserve", "voxserve-bs1", "baseline"}
    for levels in run.systems.values():
        assert [lv.concurrency for lv in levels] == [1, 2]
        assert all(lv.errors == 0 for lv in levels)
    (written,) = tmp_path.glob("run-*.json")
    assert read_json(written).systems.keys() == run.systems.keys()
    assert list(tmp_path.glob("run-*.png")) and list(tmp_path.glob("run-*.md"))
