"""`s3gen.safetensors`: loading its decode path, and writing random ones in the upstream layout."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from voxserve.vocoder.codecs.checkpoint import PARAMETRIZED, checkpoint_entries, load_state_dict
from voxserve.vocoder.codecs.s3gen.config import S3GenConfig
from voxserve.vocoder.codecs.s3gen.flow import S3Gen


def meta_model(config: S3GenConfig) -> S3Gen:
    """The module on the meta device: names and shapes without memory."""
    with torch.device("meta"):
        return S3Gen(config)


def load_s3gen(
    path: str | Path, config: S3GenConfig, *, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> S3Gen:
    """The decode path of an S3Gen checkpoint (either weight-norm naming), in eval mode.
    Raises CheckpointError naming missing or misshapen tensors."""
    state = load_state_dict(
        path, meta_model(config), naming=PARAMETRIZED, dtype=dtype, device=device, label="S3Gen checkpoint"
    )
    model = S3Gen(config).to(device=device, dtype=dtype)
    model.load_state_dict(state)
    return model.eval()


def write_random_s3gen(path: str | Path, config: S3GenConfig, seed: int) -> None:
    """Random weights under the upstream names (weight norm as parametrizations): the loading code
    real checkpoints go through, at any size. Norms start at 1 and Snake alphas at 1, so the random
    model's activations stay in range."""
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for key, _, shape in checkpoint_entries(meta_model(config), PARAMETRIZED):
        name = key.rsplit(".", 1)[-1]
        if key.endswith(PARAMETRIZED[0]):  # weight-norm g: keep |weight| per channel modest
            tensors[key] = torch.full(shape, 0.5)
        elif name == "alpha" or (name == "weight" and len(shape) == 1):  # Snake, LayerNorm scale
            tensors[key] = torch.ones(shape)
        elif name == "bias" and len(shape) == 1:
            tensors[key] = torch.zeros(shape)
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
            tensors[key] = torch.randn(shape, generator=generator) / fan_in**0.5
    save_file(tensors, str(path))
