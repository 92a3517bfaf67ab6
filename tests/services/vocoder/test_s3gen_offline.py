from __future__ import annotations

import pytest
import torch

from voxserve.random_packs.voices import random_s3_voice
from voxserve.vocoder.codecs.s3gen.config import TINY
from voxserve.vocoder.codecs.s3gen.flow import S3Gen
from voxserve.vocoder.codecs.s3gen.offline import FADE_IN_SAMPLES, decode_offline, fade_in


def tokens(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 6561, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n", [1, 7, 25])
def test_every_token_gives_960_samples(tiny_s3gen: S3Gen, n: int) -> None:
    voice = random_s3_voice(TINY.flow, prompt_tokens=6, seed=1)
    wave = decode_offline(tiny_s3gen, tokens(n, n), voice, seed=0)
    assert wave.shape == (960 * n,) and torch.isfinite(wave).all()
    assert torch.all(wave[:FADE_IN_SAMPLES] == 0)


def test_the_same_seed_gives_the_same_samples_and_another_seed_other_ones(tiny_s3gen: S3Gen) -> None:
    voice, t = random_s3_voice(TINY.flow, 6, seed=2), tokens(12, 3)
    first, again, other = (decode_offline(tiny_s3gen, t, voice, seed=s) for s in (5, 5, 6))
    assert torch.equal(first, again)
    assert torch.max(torch.abs(first - other)) > 1e-4


def test_fade_in_goes_from_silence_to_full_level() -> None:
    gains = fade_in(2 * FADE_IN_SAMPLES)
    assert torch.all(gains[:FADE_IN_SAMPLES] == 0) and gains[-1] == 1.0
    assert torch.all(gains[1:] >= gains[:-1])
    assert fade_in(100).shape == (100,)
