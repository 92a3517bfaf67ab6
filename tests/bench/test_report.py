"""Level summaries, sustained streams, the markdown table, the JSON record and the plot, on
synthetic results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.load import LoadResult, StreamRecord
from bench.report import (
    BenchRun,
    LevelSummary,
    machine_facts,
    markdown_table,
    plot,
    read_json,
    summarize,
    sustained_streams,
    write_json,
)


def record(
    request: int,
    ttfa: float | None = 0.1,
    *,
    audio: float = 2.0,
    total: float = 1.0,
    underruns: int = 0,
    wait_ms: float = 0.0,
    error: str | None = None,
) -> StreamRecord:
    return StreamRecord(
        request=request,
        client=0,
        text_id="short-0",
        kind="short",
        concurrency=1,
        start_seconds=0.0,
        ttfa_seconds=ttfa,
        total_seconds=total,
        audio_seconds=audio,
        real_time_factor=total / audio if audio else None,
        underruns=underruns,
        underrun_wait_ms=wait_ms,
        samples=int(audio * 16000),
        server_first_audio_seconds=0.05,
        server_semantic_tokens=int(audio * 50),
        server_samples=int(audio * 16000),
        error=error,
    )


def level(
    concurrency: int,
    *,
    p50: float | None = 0.1,
    p95: float | None = 0.2,
    throughput: float = 1.0,
    underrun_streams: int = 0,
    errors: int = 0,
    streams: int = 10,
) -> LevelSummary:
    return LevelSummary(
        concurrency=concurrency,
        streams=streams,
        errors=errors,
        ttfa_p50=p50,
        ttfa_p95=p95,
        ttfa_p99=p95,
        mean_rtf=0.5,
        underrun_streams=underrun_streams,
        underrun_rate=underrun_streams / max(streams - errors, 1),
        underrun_ms_p95=0.0,
        audio_seconds=throughput * 10,
        wall_seconds=10.0,
        audio_seconds_per_wall_second=throughput,
    )


def test_summary_percentiles_rates_and_throughput() -> None:
    ttfas = [0.1, 0.2, 0.3, 0.4, 1.0]
    records = [
        record(i, t, underruns=1 if i == 4 else 0, wait_ms=40.0 if i == 4 else 0.0)
        for i, t in enumerate(ttfas)
    ]
    records.append(record(5, None, audio=0.0, total=0.5, error="UNAVAILABLE: down"))
    s = summarize(LoadResult(records, wall_seconds=4.0), concurrency=3)
    assert s.concurrency == 3
    assert (s.streams, s.errors) == (6, 1)
    # numpy linear interpolation: positions 2.0, 3.8 and 3.96 in the sorted five.
    assert s.ttfa_p50 == pytest.approx(0.3)
    assert s.ttfa_p95 == pytest.approx(0.4 + 0.8 * 0.6)
    assert s.ttfa_p99 == pytest.approx(0.4 + 0.96 * 0.6)
    assert s.ttfa_p95 == pytest.approx(float(np.percentile(ttfas, 95)))
    assert s.mean_rtf == pytest.approx(0.5)
    assert s.underrun_streams == 1
    assert s.underrun_rate == pytest.approx(1 / 5)
    assert s.underrun_ms_p95 == pytest.approx(0.8 * 40.0)
    assert s.audio_seconds == pytest.approx(10.0)
    assert s.audio_seconds_per_wall_second == pytest.approx(10.0 / 4.0)


def test_summary_of_only_failures_has_no_latency() -> None:
    s = summarize(LoadResult([record(0, None, audio=0.0, error="INTERNAL: x")], 1.0), concurrency=1)
    assert (s.streams, s.errors) == (1, 1)
    assert s.ttfa_p50 is None and s.mean_rtf is None
    assert s.underrun_rate == 0.0


def test_sustained_streams_stops_at_the_first_failing_level() -> None:
    levels = [level(8), level(1), level(4, underrun_streams=1), level(2), level(16)]
    assert sustained_streams(levels) == 2
    assert sustained_streams([level(1), level(2, errors=1), level(4)]) == 1
    assert sustained_streams([level(1, underrun_streams=2)]) == 0
    assert sustained_streams([level(1), level(2), level(4)]) == 4
    assert sustained_streams([]) == 0


def make_run(scaling: dict | None = None) -> BenchRun:
    return BenchRun(
        machine=machine_facts(),
        git_commit="0123456789abcdef",
        pack={"path": "/packs/tiny", "family": "spark"},
        settings={"max_tokens": 200, "requests_per_level": 10},
        systems={
            "baseline": [
                level(1, p50=0.200, p95=0.400, throughput=2.0),
                level(2, p50=0.300, p95=0.900, throughput=3.0, underrun_streams=2),
            ],
            "voxserve": [
                level(1, p50=0.100, p95=0.500, throughput=3.0),
                level(2, p50=0.150, p95=0.300, throughput=6.0),
                level(4, p50=0.250, p95=0.500, throughput=9.0),
            ],
        },
        scaling=scaling,
    )


def table_rows(table: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[0].isdigit():
            rows[(cells[0], cells[1])] = cells
    return rows


def test_table_ratios_against_the_baseline() -> None:
    table = markdown_table(make_run())
    rows = table_rows(table)
    assert list(rows) == [
        ("1", "baseline"),
        ("1", "voxserve"),
        ("2", "baseline"),
        ("2", "voxserve"),
        ("4", "voxserve"),
    ]
    assert rows[("1", "baseline")][4:8] == ["200", "400", "0.00", "2.00"]
    assert rows[("1", "baseline")][8:] == ["–", "–", "–"]
    # baseline TTFA / system TTFA; system throughput / baseline throughput.
    assert rows[("1", "voxserve")][8:] == ["2.00×", "0.80×", "1.50×"]
    assert rows[("2", "voxserve")][8:] == ["2.00×", "3.00×", "2.00×"]
    assert rows[("2", "baseline")][6] == "0.20"
    assert rows[("4", "voxserve")][8:] == ["n/a", "n/a", "n/a"]
    assert "baseline 1, voxserve 4" in table


def test_table_renders_scaling_generically() -> None:
    scaling = {
        "batched": {"1s": {"compute_seconds_per_audio_second": 0.125, "streams": 4}},
        "serial": {
            "1s": {"compute_seconds_per_audio_second": 0.5},
            "10s": {"compute_seconds_per_audio_second": 0.25, "peak_memory_mb": 812.5},
        },
    }
    table = markdown_table(make_run(scaling))
    assert "| strategy | length | compute_seconds_per_audio_second | streams | peak_memory_mb |" in table
    assert "| batched | 1s | 0.125 | 4 | – |" in table
    assert "| serial | 10s | 0.25 | – | 812.5 |" in table
    assert "strategy" not in markdown_table(make_run())


def test_json_round_trip(tmp_path: Path) -> None:
    run = make_run({"serial": {"1s": {"compute_seconds_per_audio_second": 0.5}}})
    run.systems["voxserve"].append(level(8, p50=None, p95=None, errors=10))
    path = tmp_path / "run.json"
    write_json(run, path)
    assert read_json(path) == run


def test_machine_facts_are_plain_data() -> None:
    facts = machine_facts()
    assert {"platform", "python", "cpu_count", "cpu_model", "memory_bytes", "torch", "vllm"} <= set(facts)
    assert facts["cpu_count"] >= 1


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = tmp_path / "bench.png"
    plot(make_run(), path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
