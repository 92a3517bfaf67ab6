from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from voxserve.random_packs.s3gen_checkpoint import write_random_s3gen
from voxserve.vocoder.codecs.checkpoint import CheckpointError
from voxserve.vocoder.codecs.s3gen.checkpoint import load_s3gen
from voxserve.vocoder.codecs.s3gen.config import TINY


def test_a_written_checkpoint_loads_and_decodes(tmp_path: Path) -> None:
    path = tmp_path / "s3gen.safetensors"
    write_random_s3gen(path, TINY, seed=3)
    model = load_s3gen(path, TINY)
    stored = load_file(str(path))
    assert torch.equal(model.flow.input_embedding.weight, stored["flow.input_embedding.weight"])
    with torch.inference_mode():
        tokens = torch.randint(0, 6561, (1, 14), generator=torch.Generator().manual_seed(0))
        mel = model.flow(
            tokens, torch.tensor([14]), torch.zeros(1, 8, 80), torch.randn(1, 192), torch.randn(1, 80, 28)
        )
    assert mel.shape == (1, 80, 28) and torch.isfinite(mel).all()


def test_a_missing_or_misshapen_tensor_is_named(tmp_path: Path) -> None:
    path = tmp_path / "s3gen.safetensors"
    write_random_s3gen(path, TINY, seed=3)
    tensors = load_file(str(path))
    del tensors["flow.encoder_proj.weight"]
    tensors["mel2wav.m_source.l_linear.weight"] = torch.zeros(1, 8)
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError) as caught:
        load_s3gen(path, TINY)
    message = str(caught.value)
    assert "flow.encoder_proj.weight" in message
    assert "mel2wav.m_source.l_linear.weight: expected (1, 9), found (1, 8)" in message
