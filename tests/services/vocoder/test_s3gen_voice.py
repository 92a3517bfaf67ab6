from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from voxserve.random_packs.voices import random_s3_voice, save_s3_voice
from voxserve.vocoder.codecs.base import CodecInputError
from voxserve.vocoder.codecs.s3gen.config import FULL
from voxserve.vocoder.codecs.s3gen.voice import S3Voice

FLOW = FULL.flow


def test_a_voice_round_trips_through_its_file(tmp_path: Path) -> None:
    voice = random_s3_voice(FLOW, prompt_tokens=30, seed=1)
    save_s3_voice(voice, tmp_path / "v.safetensors")
    loaded = S3Voice.load(tmp_path / "v.safetensors", FLOW)
    assert torch.equal(loaded.prompt_tokens, voice.prompt_tokens)
    assert torch.equal(loaded.prompt_mel, voice.prompt_mel) and torch.equal(loaded.xvector, voice.xvector)
    assert loaded.prompt_mel.shape == (60, 80)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"prompt_tokens": torch.tensor([1, 6561])}, "[0, 6561)"),
        ({"prompt_tokens": torch.zeros(2, 2, dtype=torch.int64)}, "1-D integer"),
        ({"prompt_mel": torch.zeros(59, 80)}, "expected (60, 80)"),
        ({"xvector": torch.zeros(191)}, "expected (192,)"),
        ({"xvector": torch.full((192,), float("nan"))}, "finite"),
    ],
)
def test_bad_voices_are_refused_naming_the_field(change: dict[str, torch.Tensor], needle: str) -> None:
    voice = dataclasses.replace(random_s3_voice(FLOW, 30, 2), **change)
    with pytest.raises(CodecInputError, match="voice") as caught:
        voice.validate(FLOW)
    assert needle in str(caught.value)


def test_a_file_without_the_tensors_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"xvector": torch.zeros(192)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CodecInputError, match="lacks prompt_tokens, prompt_mel"):
        S3Voice.load(tmp_path / "bad.safetensors", FLOW)
    with pytest.raises(CodecInputError, match="voice file"):
        S3Voice.load(tmp_path / "missing.safetensors", FLOW)
