"""T3 voices and their limits."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from voxserve.generator.t3.config import FULL, TINY
from voxserve.generator.t3.voice import DEFAULT_EXAGGERATION, MAX_PROMPT_TOKENS, T3Voice
from voxserve.random_packs.voices import random_t3_voice


def test_a_random_voice_is_valid_and_deterministic() -> None:
    voice = random_t3_voice(FULL, MAX_PROMPT_TOKENS, seed=1)
    voice.validate(FULL)
    assert voice.speaker_embedding.shape == (256,) and voice.speaker_embedding.dtype == torch.float32
    assert voice.prompt_tokens.shape == (150,) and voice.prompt_tokens.dtype == torch.int64
    assert voice.exaggeration == DEFAULT_EXAGGERATION == 0.5
    assert float(voice.speaker_embedding.min()) >= 0 and abs(float(voice.speaker_embedding.norm()) - 1) < 1e-5
    again = random_t3_voice(FULL, MAX_PROMPT_TOKENS, seed=1)
    assert torch.equal(again.prompt_tokens, voice.prompt_tokens)
    assert not torch.equal(
        random_t3_voice(FULL, MAX_PROMPT_TOKENS, seed=2).prompt_tokens, voice.prompt_tokens
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"speaker_embedding": torch.zeros(255)},
            r"voice speaker_embedding must be 256 floats, got \(255,\)",
        ),
        ({"speaker_embedding": torch.zeros(256, dtype=torch.int64)}, "speaker_embedding must be 256 floats"),
        ({"speaker_embedding": torch.full((256,), float("nan"))}, "speaker_embedding must be finite"),
        ({"prompt_tokens": torch.zeros(151, dtype=torch.int64)}, "has 151 tokens; it needs 1 to 150"),
        ({"prompt_tokens": torch.zeros(0, dtype=torch.int64)}, "has 0 tokens; it needs 1 to 150"),
        ({"prompt_tokens": torch.zeros(2, 3, dtype=torch.int64)}, "must be a 1-D integer tensor"),
        ({"prompt_tokens": torch.zeros(3)}, "must be a 1-D integer tensor"),
        ({"prompt_tokens": torch.tensor([0, 6561])}, r"prompt_tokens must lie in \[0, 6561\)"),
        ({"prompt_tokens": torch.tensor([-1, 5])}, r"prompt_tokens must lie in \[0, 6561\)"),
        ({"exaggeration": 2.5}, r"exaggeration must be a finite number in \[0, 2\], got 2.5"),
        ({"exaggeration": -0.1}, "exaggeration must be a finite number"),
        ({"exaggeration": float("inf")}, "exaggeration must be a finite number"),
    ],
)
def test_validation_names_the_field_and_its_limit(change: dict, message: str) -> None:
    voice = dataclasses.replace(random_t3_voice(FULL, 10, seed=0), **change)
    with pytest.raises(ValueError, match=message):
        voice.validate(FULL)


def test_validation_accepts_the_limits_and_takes_a_label() -> None:
    voice = T3Voice(torch.ones(256), torch.tensor([0, 6560] * 75), 2.0)
    voice.validate(FULL)
    voice.validate()  # the limits are the same at every size: the full size is the default
    dataclasses.replace(voice, exaggeration=0.0).validate(FULL)
    with pytest.raises(ValueError, match=r"voice 'x' speaker_embedding must be 64 floats"):
        voice.validate(dataclasses.replace(TINY, speaker_dim=64), label="voice 'x' ")
