"""`s3gen.safetensors`: loading its decode path, and writing random ones in the upstream layout."""

from __future__ import annotations

from pathlib import Path

import torch

from voxserve.vocoder.codecs.checkpoint import PARAMETRIZED, load_state_dict
from voxserve.vocoder.codecs.s3gen.config import S3GenConfig
from voxserve.vocoder.codecs.s3gen.flow import S3Gen

F0_PREFIX = "mel2wav.f0_predictor."


def meta_model(config: S3GenConfig) -> S3Gen:
    """The module on the meta device: names and shapes without memory."""
    with torch.device("meta"):
        return S3Gen(config)


def load_s3gen(
    path: str | Path, config: S3GenConfig, *, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> S3Gen:
    """The decode path of an S3Gen checkpoint (either weight-norm naming), in eval mode, in
    `dtype` except HiFT's f0 predictor, which stays float32. Raises CheckpointError naming
    missing or misshapen tensors."""
    state = load_state_dict(
        path,
        meta_model(config),
        naming=PARAMETRIZED,
        dtype=torch.float32,
        device=device,
        label="S3Gen checkpoint",
    )
    model = S3Gen(config).to(device=device, dtype=dtype)
    # The excitation's phase integrates f0 over the whole stream: f0 rounded to bfloat16 (steps
    # of 1 Hz at 128-256 Hz) or float16 would make the pitch a staircase and the phase drift.
    model.mel2wav.f0_predictor.float()
    model.load_state_dict(
        {k: v if k.startswith(F0_PREFIX) else v.to(dtype) for k, v in state.items()}, strict=True
    )
    return model.eval()
