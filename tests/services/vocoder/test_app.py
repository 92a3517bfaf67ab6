"""How the vocoder turns its config, its pack's family and its codec into a chunk policy and
scheduler limits."""

from __future__ import annotations

from pathlib import Path

from voxserve.families import s3
from voxserve.random_packs.writer import write_random_pack
from voxserve.vocoder import config as vocoder_config
from voxserve.vocoder.app import chunk_policy, scheduler_limits
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.codecs.registry import build_codec
from voxserve.vocoder.codecs.s3gen.codec import S3GenCodec
from voxserve.vocoder.codecs.snac.codec import SnacCodec
from voxserve.vocoder.receptive_field import measure_context
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


def test_an_orpheus_pack_gets_snac_with_frame_sized_chunks_and_its_measured_reach(tmp_path: Path) -> None:
    pack = write_random_pack(tmp_path, "tiny", seed=2, family="orpheus")
    config = vocoder_config.load(pack=pack.root, context_tokens=0)
    codec = build_codec(pack, device=config.device, dtype=config.torch_dtype)
    assert isinstance(codec, SnacCodec) and codec.receptive_field_tokens == 3
    policy = chunk_policy(config, codec, pack.family)
    assert (policy.first_chunk_tokens, policy.max_chunk_tokens) == (2, 12)
    assert (policy.left_context_tokens, policy.lookahead_tokens) == (3, 3)
    set_explicitly = vocoder_config.load(
        pack=pack.root, first_chunk_tokens=1, max_chunk_tokens=4, context_tokens=5
    )
    policy = chunk_policy(set_explicitly, codec, pack.family)
    assert (policy.first_chunk_tokens, policy.max_chunk_tokens, policy.left_context_tokens) == (1, 4, 5)


def test_each_codec_gives_its_chunk_context(
    tiny_bicodec: BiCodec, s3gen_codec: S3GenCodec, tiny_snac: SnacCodec
) -> None:
    # BiCodec measures its context from the weights unless set, the same on both sides.
    measured = measure_context(tiny_bicodec, 5e-5).context_tokens
    assert tiny_bicodec.chunk_context(0, 5e-5) == (measured, measured)
    assert tiny_bicodec.chunk_context(7, 5e-5) == (7, 7)
    # S3Gen's lookahead is the flow's own whatever the setting; its left context defaults to 25.
    lookahead = s3gen_codec.lookahead_tokens
    assert s3gen_codec.chunk_context(0, 5e-5) == (25, lookahead)
    assert s3gen_codec.chunk_context(7, 5e-5) == (7, lookahead)
    assert tiny_snac.chunk_context(0, 5e-5) == (3, 3)


def test_chunk_sizes_default_to_the_familys(s3gen_codec: S3GenCodec) -> None:
    config = vocoder_config.load()
    policy = chunk_policy(config, s3gen_codec, s3.FAMILY)
    assert (policy.first_chunk_tokens, policy.max_chunk_tokens) == (
        s3.FAMILY.first_chunk_tokens,
        s3.FAMILY.max_chunk_tokens,
    )
    assert (policy.left_context_tokens, policy.lookahead_tokens) == (25, s3gen_codec.lookahead_tokens)
