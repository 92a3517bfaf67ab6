"""HTTP against gRPC in a run's report: the rows, their table, the run's markdown and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from bench.client_comparison import compare_clients, comparison_table, http_system
from bench.load import LoadResult, StreamRecord
from bench.report import BenchRun, LevelSummary, markdown_table, read_json, summarize, write_json


def level(
    concurrency: int, p50: float, p95: float, total: float, *, streams: int = 4, errors: int = 0
) -> LevelSummary:
    return LevelSummary(
        concurrency=concurrency,
        streams=streams,
        errors=errors,
        ttfa_p50=p50,
        ttfa_p95=p95,
        ttfa_p99=p95,
        mean_rtf=0.5,
        underrun_streams=0,
        underrun_rate=0.0,
        underrun_ms_p95=0.0,
        audio_seconds=2.0 * (streams - errors),
        wall_seconds=4.0,
        audio_seconds_per_wall_second=0.5,
        total_p50=total,
    )


def stream(request: int, total: float, error: str | None = None) -> StreamRecord:
    return StreamRecord(
        request=request,
        client=0,
        text_id="short-0",
        kind="short",
        concurrency=1,
        start_seconds=0.0,
        ttfa_seconds=None if error else 0.1,
        total_seconds=total,
        audio_seconds=0.0 if error else 2.0,
        real_time_factor=None if error else total / 2.0,
        underruns=0,
        underrun_wait_ms=0.0,
        samples=0 if error else 48000,
        server_first_audio_seconds=0.0,
        server_semantic_tokens=0,
        server_samples=0,
        error=error,
    )


def systems() -> dict[str, list[LevelSummary]]:
    return {
        "voxserve": [level(1, 0.100, 0.120, 1.000), level(8, 0.400, 0.600, 2.000)],
        "baseline": [level(1, 0.080, 0.090, 0.900)],
        http_system("voxserve"): [level(1, 0.112, 0.150, 1.030), level(8, 0.500, 0.900, 2.250, errors=1)],
    }


def test_summary_total_is_the_median_of_successful_requests() -> None:
    records = [stream(0, 1.0), stream(1, 3.0), stream(2, 2.0), stream(3, 50.0, error="HTTP 503: draining")]
    assert summarize(LoadResult(records, 5.0), 1).total_p50 == pytest.approx(2.0)
    assert summarize(LoadResult([stream(0, 1.0, error="x")], 1.0), 1).total_p50 is None


def test_rows_pair_each_level_measured_both_ways() -> None:
    rows = compare_clients(systems())
    # The baseline has no HTTP front: no row.
    assert [(r["system"], r["concurrency"]) for r in rows] == [("voxserve", 1), ("voxserve", 8)]
    one, eight = rows
    assert one["ttfa_p50_ratio"] == pytest.approx(1.12)
    assert one["ttfa_p95_ratio"] == pytest.approx(1.25)
    assert one["ttfa_p50_overhead"] == pytest.approx(0.012)
    assert one["total_p50_overhead"] == pytest.approx(0.030)
    assert one["total_p50_ratio"] == pytest.approx(1.03)
    assert eight["ttfa_p95_ratio"] == pytest.approx(1.5)
    assert eight["total_p50_overhead"] == pytest.approx(0.250)
    assert (eight["grpc_errors"], eight["http_errors"]) == (0, 1)
    # Audio per successful request, so a failed request does not shrink it.
    assert eight["http_audio_per_request"] == pytest.approx(2.0)


def test_a_level_without_latency_has_no_ratio() -> None:
    grpc = level(1, 0.1, 0.1, 1.0)
    http = LevelSummary(**(asdict(level(1, 0.1, 0.1, 1.0)) | {"ttfa_p50": None, "total_p50": None}))
    (row,) = compare_clients({"voxserve": [grpc], "voxserve/http": [http]})
    assert row["ttfa_p50_ratio"] is None and row["ttfa_p50_overhead"] is None
    assert "| n/a |" in comparison_table([row])[2]


def test_table_shows_both_clients_ratio_and_overhead() -> None:
    lines = comparison_table(compare_clients(systems()))
    assert len(lines) == 4
    assert "TTFA p50 HTTP/gRPC" in lines[0] and "HTTP overhead, total p50 (ms)" in lines[0]
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells == [
        "1",
        "voxserve",
        "4 / 4",
        "0 / 0",
        "100",
        "112",
        "1.12×",
        "120",
        "150",
        "1.25×",
        "+12",
        "1000",
        "1030",
        "+30",
        "2.00 / 2.00",
    ]
    assert comparison_table([]) == []


def test_run_markdown_and_json_carry_the_comparison(tmp_path: Path) -> None:
    run = BenchRun(machine={}, git_commit="abc", pack={}, settings={}, systems=systems())
    run.http_vs_grpc = compare_clients(run.systems)
    text = markdown_table(run)
    assert "HTTP (`POST /v1/audio/speech`, pcm) against gRPC" in text
    assert "| 8 | voxserve/http | 4 | 1 |" in text
    path = tmp_path / "run.json"
    write_json(run, path)
    again = read_json(path)
    assert again.http_vs_grpc == run.http_vs_grpc
    assert again.systems["voxserve/http"][1].total_p50 == pytest.approx(2.25)
    without = BenchRun(
        machine={}, git_commit="abc", pack={}, settings={}, systems={"voxserve": systems()["voxserve"]}
    )
    assert "against gRPC" not in markdown_table(without)


def test_a_run_written_before_the_comparison_still_reads(tmp_path: Path) -> None:
    data = json.loads(
        json.dumps(asdict(BenchRun({}, "abc", {}, {}, {"voxserve": [level(1, 0.1, 0.2, 1.0)]})))
    )
    del data["http_vs_grpc"]
    del data["systems"]["voxserve"][0]["total_p50"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    run = read_json(path)
    assert run.systems["voxserve"][0].total_p50 is None and run.http_vs_grpc == []
