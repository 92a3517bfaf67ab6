"""The load client against the real stack (tiny pack): counts, sample bookkeeping, both modes."""

from __future__ import annotations

from bench.corpus import load_corpus
from bench.load import run_load
from voxserve.stack import LocalStack

SAMPLES_PER_TOKEN = 320


async def test_count_mode_records_every_stream(stack: LocalStack) -> None:
    texts = load_corpus()
    result = await run_load(
        stack.ports.address("gateway"), 2, texts=texts, requests=4, max_tokens=20, seed_base=100
    )
    assert len(result.records) == 4
    assert [r.request for r in result.records] == [0, 1, 2, 3]
    assert result.wall_seconds > 0
    for r in result.records:
        assert r.error is None, r.error
        assert r.concurrency == 2
        assert 1 <= r.server_semantic_tokens <= 20
        assert r.samples == SAMPLES_PER_TOKEN * r.server_semantic_tokens == r.server_samples
        assert r.ttfa_seconds is not None and r.ttfa_seconds > 0
        assert r.total_seconds >= r.ttfa_seconds
        assert r.audio_seconds == r.samples / 16000
        assert r.real_time_factor is not None and r.real_time_factor > 0
        assert r.underruns >= 0 and r.underrun_wait_ms >= 0
    # Each client walks the corpus from its own offset.
    assert {r.text_id for r in result.records if r.client == 0} <= {"short-0", "short-1"}
    assert {r.text_id for r in result.records if r.client == 1} <= {"short-1", "short-2"}


async def test_duration_mode_ends_by_itself(stack: LocalStack) -> None:
    result = await run_load(
        stack.ports.address("gateway"), 2, texts=load_corpus(), duration=0.5, max_tokens=10
    )
    # Both clients start at once, so at least two streams; none starts after the duration.
    assert len(result.records) >= 2
    assert all(r.error is None for r in result.records)
    assert all(r.start_seconds < 0.5 for r in result.records)
