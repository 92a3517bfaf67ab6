"""`bench run` through the gateway's HTTP front beside gRPC: levels measured both ways against
the live stack, the settings a comparison refuses, and the whole run end to end (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import main
from bench.corpus import load_corpus
from bench.http_load import HTTP_SAMPLE_RATE
from bench.load import run_load
from bench.report import read_json
from bench.runner import BenchSettings, Endpoints, measure_clients, run_bench
from voxserve.families.pack import Pack
from voxserve.stack import LocalStack


def test_both_clients_measure_each_level_of_one_stack(stack: LocalStack) -> None:
    settings = BenchSettings(
        concurrency=(1, 2),
        requests_per_client=1,
        max_tokens=None,
        warmup_requests=1,
        clients=("grpc", "http"),
    )
    texts = [t for t in load_corpus() if t.kind == "short"]
    endpoints = Endpoints(stack.ports.address("gateway"), stack.ports.http_url())
    levels = measure_clients(endpoints, texts, settings)
    assert list(levels) == ["grpc", "http"]
    for client, measured in levels.items():
        assert [lv.concurrency for lv in measured] == [1, 2], client
        assert [lv.streams for lv in measured] == [1, 2], client
        assert [lv.errors for lv in measured] == [0, 0], client
        for lv in measured:
            assert lv.ttfa_p50 is not None and lv.ttfa_p50 > 0, client
            assert lv.total_p50 is not None and lv.total_p50 >= lv.ttfa_p50, client
            assert lv.audio_seconds > 0, client


def test_a_system_without_an_http_front_is_measured_through_grpc_only(stack: LocalStack) -> None:
    settings = BenchSettings(
        concurrency=(1,), requests_per_client=1, max_tokens=None, warmup_requests=1, clients=("grpc", "http")
    )
    texts = [t for t in load_corpus() if t.kind == "short"]
    levels = measure_clients(Endpoints(stack.ports.address("gateway")), texts, settings)
    assert list(levels) == ["grpc"]
    assert levels["grpc"][0].errors == 0 and levels["grpc"][0].audio_seconds > 0


async def test_grpc_load_asks_for_the_http_front_rate(stack: LocalStack) -> None:
    texts = [t for t in load_corpus() if t.kind == "short"]
    result = await run_load(
        stack.ports.address("gateway"),
        1,
        texts=texts,
        requests=1,
        max_tokens=20,
        sample_rate=HTTP_SAMPLE_RATE,
    )
    (r,) = result.records
    assert r.error is None, r.error
    assert r.samples == pytest.approx(r.audio_seconds * HTTP_SAMPLE_RATE)
    # 20 tokens of 320 samples at 16 kHz, resampled to 24 kHz.
    assert r.samples == pytest.approx(20 * 320 * 1.5, abs=200)


def test_a_comparison_refuses_a_token_cap_and_unknown_clients(tiny_pack: Pack, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HTTP API takes no max_tokens"):
        run_bench(tiny_pack, BenchSettings(clients=("grpc", "http"), max_tokens=100), tmp_path)
    with pytest.raises(ValueError, match=r"clients \['ws'\] are unknown"):
        run_bench(tiny_pack, BenchSettings(clients=("ws",)), tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_run_compares_http_with_grpc_end_to_end(tiny_pack: Pack, tmp_path: Path) -> None:
    args = ["run", "--pack", str(tiny_pack.root), "--systems", "voxserve", "--client", "grpc,http"]
    args += ["--concurrency", "1,2", "--requests-per-client", "1", "--kinds", "short", "--no-scaling"]
    args += ["--request-timeout", "60", "--out", str(tmp_path)]
    assert main(args) == 0
    (written,) = tmp_path.glob("run-*.json")
    run = read_json(written)
    assert list(run.systems) == ["voxserve", "voxserve/http"]
    assert run.settings["max_tokens"] is None and run.settings["clients"] == ["grpc", "http"]
    assert [(r["system"], r["concurrency"]) for r in run.http_vs_grpc] == [("voxserve", 1), ("voxserve", 2)]
    for row in run.http_vs_grpc:
        assert row["grpc_errors"] == row["http_errors"] == 0
        assert row["ttfa_p50_ratio"] > 0 and row["total_p50_overhead"] is not None
    assert "TTFA p50 HTTP/gRPC" in written.with_suffix(".md").read_text()
