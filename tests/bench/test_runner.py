"""The benchmark runner: levels measured against a live gateway, and `bench run` of every system."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import main
from bench.corpus import load_corpus
from bench.report import read_json
from bench.runner import BenchSettings, measure_system, running_system
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


SMOKE_TOKENS = 30


@pytest.mark.timeout(900)
def test_bench_run_smoke_every_system_end_to_end(tiny_pack: Pack, tmp_path: Path) -> None:
    # `bench run --compare baseline` at the smallest settings: each system started by the harness,
    # warmed up and loaded at two levels, and the run written. A request that does not end fails
    # within the short deadline instead of the default 300 s.
    args = ["run", "--pack", str(tiny_pack.root), "--compare", "baseline", "--concurrency", "1,2"]
    args += ["--requests-per-client", "1", "--max-tokens", str(SMOKE_TOKENS), "--no-scaling"]
    args += ["--request-timeout", "60", "--out", str(tmp_path)]
    assert main(args) == 0
    (written,) = tmp_path.glob("run-*.json")
    run = read_json(written)
    assert list(run.systems) == ["voxserve", "voxserve-bs1", "baseline"]
    for name, levels in run.systems.items():
        assert [lv.concurrency for lv in levels] == [1, 2], name
        assert [lv.streams for lv in levels] == [1, 2], name
        assert [lv.errors for lv in levels] == [0, 0], name
        assert all(lv.ttfa_p50 is not None and lv.ttfa_p50 > 0 for lv in levels), name
        # Every stream's 30 tokens of 320 samples at 16 kHz.
        assert [lv.audio_seconds for lv in levels] == pytest.approx(
            [n * SMOKE_TOKENS * 320 / 16000 for n in (1, 2)]
        ), name
    assert written.with_suffix(".png").stat().st_size > 0
    assert "baseline" in written.with_suffix(".md").read_text()
