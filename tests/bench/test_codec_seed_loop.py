"""The seed's decode loop on S3Gen and SNAC (the baseline of `bench vocoder` on their packs):
its schedule at the seed's audio durations, and every sample of the stream sent once, in order."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.codec_seed_loop import WholeBufferLoop
from bench.tier_codec import tier_codec
from bench.vocoder_packs import write_vocoder_pack
from voxserve.vocoder.codecs.base import Codec
from voxserve.vocoder.codecs.registry import build_codec
from voxserve.vocoder.servicer import voice_conditioning


@pytest.fixture(scope="module", params=["s3gen", "snac"])
def codec(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Codec:
    pack = write_vocoder_pack(tmp_path_factory.mktemp(request.param), request.param, "tiny")
    return build_codec(pack)


def open_loop(codec: Codec, seed: int = 4) -> tuple[WholeBufferLoop, random.Random]:
    rng = random.Random(seed)
    start = tier_codec(codec.name).start(rng, seed)
    return WholeBufferLoop(codec, codec.condition(voice_conditioning(start)), seed), rng


def test_the_schedule_is_the_seeds_in_audio_time(codec: Codec) -> None:
    loop, _ = open_loop(codec)
    # 200 ms, then every 960 ms of audio: S3Gen 25 tokens per second, SNAC 11.7 frames.
    assert (loop.first_tokens, loop.interval_tokens) == ((5, 24) if codec.name == "s3gen" else (3, 11))
    assert loop.stitcher.fade_samples == 1200


async def test_every_sample_is_sent_once_in_order(codec: Codec) -> None:
    loop, rng = open_loop(codec)
    client = tier_codec(codec.name)
    tokens = 40
    ids = client.random_ids(rng, tokens)
    frame = 2 * codec.codes_per_token
    chunks = []
    for i in range(0, len(ids), frame):
        chunks += await loop.add(ids[i : i + frame])
    assert loop.work.calls >= 2, "decodes ran while tokens arrived"
    chunks += await loop.close()
    assert [c.final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    offsets = [c.sample_offset for c in chunks]
    sizes = [len(c.pcm_f32) // 4 for c in chunks]
    assert offsets == list(np.cumsum([0, *sizes[:-1]]))
    assert sum(sizes) == tokens * codec.samples_per_token
    assert all(c.sample_rate == codec.sample_rate for c in chunks)
    # The closing decode covers every token: what was sent ends as the whole-buffer decode ends.
    whole = loop.decode_all(torch.tensor(ids).reshape(tokens, codec.codes_per_token).squeeze(-1))
    last = np.frombuffer(chunks[-1].pcm_f32, dtype="<f4")
    np.testing.assert_allclose(last, whole.numpy()[-last.size :], atol=1e-6)


def test_a_codec_without_a_whole_buffer_decode_is_refused(tmp_path: Path) -> None:
    pack = write_vocoder_pack(tmp_path / "bicodec", "bicodec", "tiny")
    bicodec = build_codec(pack)
    with pytest.raises(ValueError, match="no whole-buffer decode"):
        WholeBufferLoop(bicodec, None, 0)
