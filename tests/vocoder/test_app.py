"""How the vocoder turns its config into a chunk policy and scheduler limits."""

from __future__ import annotations

from voxserve.vocoder import config as vocoder_config
from voxserve.vocoder.app import scheduler_limits
from voxserve.vocoder.stream import ChunkPolicy

POLICY = ChunkPolicy(first_chunk_tokens=10, max_chunk_tokens=80, left_context_tokens=14, lookahead_tokens=14)


def test_batch_tokens_default_by_device_and_always_fit_the_longest_window() -> None:
    assert scheduler_limits(vocoder_config.load(device="cpu"), POLICY).max_batch_tokens == 512
    assert scheduler_limits(vocoder_config.load(device="cuda:0"), POLICY).max_batch_tokens == 16384
    big = ChunkPolicy(
        first_chunk_tokens=10, max_chunk_tokens=600, left_context_tokens=14, lookahead_tokens=14
    )
    assert scheduler_limits(vocoder_config.load(device="cpu"), big).max_batch_tokens == 628


def test_explicit_limits_are_kept() -> None:
    config = vocoder_config.load(
        max_batch_tokens=2000, max_streams=7, max_batch_size=3, first_audio_priority_seconds=0.5
    )
    limits = scheduler_limits(config, POLICY)
    assert (limits.max_batch_tokens, limits.max_streams, limits.max_batch_size) == (2000, 7, 3)
    assert limits.first_audio_priority_seconds == 0.5
