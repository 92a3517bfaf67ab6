"""`s3gen.safetensors`: loading its decode path, and writing random ones in the upstream layout."""

from __future__ import annotations

from pathlib import Path

import torch

from voxserve.vocoder.codecs.checkpoint import PARAMETRIZED, load_state_dict
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
