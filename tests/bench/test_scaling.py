"""The scaling benchmark: which windows each strategy decodes (token counts, never timings)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.scaling import (
    STRATEGIES,
    format_table,
    run_scaling,
    strategy_windows,
    tokens_decoded,
    vocoder_policy,
    voxserve_decode_windows,
)
from bench.seed_loop import baseline_decode_windows
from voxserve.random_packs.tiny_bicodec import write_tiny_bicodec
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.stream import ChunkPolicy

POLICY = ChunkPolicy(first_chunk_tokens=10, max_chunk_tokens=80, left_context_tokens=13, lookahead_tokens=13)


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scaling-bicodec")
    write_tiny_bicodec(root, seed=0)
    return root


def test_voxserve_windows_follow_the_chunk_policy() -> None:
    # Largest chunks: the first chunk [0, 10) with lookahead, then [10, 90) would need 13 tokens
    # of lookahead beyond the 100 there are, so End takes the rest with left context only.
    assert voxserve_decode_windows(100, POLICY) == [(0, 23), (0, 100)]
    # First-size chunks with left context and lookahead, until End takes the rest.
    idle = voxserve_decode_windows(100, POLICY, 10)
    assert idle[:3] == [(0, 23), (0, 33), (7, 43)]
    assert idle[-2:] == [(57, 93), (67, 100)]


def test_voxserve_windows_cover_each_token_a_bounded_number_of_times() -> None:
    n = 3000
    counts: Counter[int] = Counter()
    for start, end in voxserve_decode_windows(n, POLICY):
        counts.update(range(start, end))
    assert set(counts) == set(range(n))
    # A token is decoded in its own chunk and as context of at most one chunk on each side.
    assert max(counts.values()) <= 3


def test_voxserve_tokens_decoded_per_audio_token_are_flat() -> None:
    per_token = {n: tokens_decoded(voxserve_decode_windows(n, POLICY)) / n for n in (250, 3000)}
    assert per_token[3000] == pytest.approx(per_token[250], rel=0.05)
    assert per_token[3000] < 1 + 2 * 13 / 80 + 0.05


def test_baseline_tokens_decoded_per_audio_token_grow() -> None:
    per_token = {n: tokens_decoded(baseline_decode_windows(n)) / n for n in (250, 3000)}
    assert per_token[3000] > 8 * per_token[250]


def test_strategies_use_the_runner_schedule() -> None:
    assert strategy_windows("baseline", 500, POLICY) == baseline_decode_windows(500)
    assert strategy_windows("baseline-window128", 500, POLICY) == baseline_decode_windows(500, 128)
    assert strategy_windows("voxserve", 500, POLICY) == voxserve_decode_windows(500, POLICY, 80)
    assert strategy_windows("voxserve-small", 500, POLICY) == voxserve_decode_windows(500, POLICY, 10)
    with pytest.raises(ValueError, match="unknown strategy"):
        strategy_windows("nope", 10, POLICY)


def test_vocoder_policy_uses_the_service_defaults_and_measured_context(pack: Path) -> None:
    policy = vocoder_policy(BiCodec.from_pack(pack))
    assert (policy.first_chunk_tokens, policy.max_chunk_tokens) == (10, 80)
    assert 0 < policy.left_context_tokens == policy.lookahead_tokens <= 40


def test_run_scaling_reports_every_strategy_and_length(pack: Path) -> None:
    result = run_scaling(pack, repeats=1, lengths=(50, 150), policy=POLICY)
    assert list(result) == list(STRATEGIES)
    for strategy, cells in result.items():
        assert list(cells) == ["1 s", "3 s"]
        for n, cell in zip((50, 150), cells.values(), strict=True):
            spans = strategy_windows(strategy, n, POLICY)
            assert cell["tokens"] == n
            assert cell["audio_seconds"] == pytest.approx(n / 50)
            assert cell["decode_calls"] == len(spans)
            assert cell["tokens_decoded"] == tokens_decoded(spans)
            assert cell["decode_seconds"] > 0
            assert cell["compute_per_audio_second"] == pytest.approx(cell["decode_seconds"] / (n / 50))
    table = format_table(result)
    assert all(name in table for name in STRATEGIES)
