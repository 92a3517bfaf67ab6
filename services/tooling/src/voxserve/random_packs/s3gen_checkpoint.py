"""Random `s3gen.safetensors` checkpoints under the upstream names, at any size."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from voxserve.random_packs.tiny_campplus import campplus_tensors
from voxserve.random_packs.tiny_speech_tokenizer import speech_tokenizer_tensors
from voxserve.vocoder.codecs.checkpoint import PARAMETRIZED, checkpoint_entries
from voxserve.vocoder.codecs.s3gen.checkpoint import meta_model
from voxserve.vocoder.codecs.s3gen.config import S3GenConfig


def write_random_s3gen(
    path: str | Path, config: S3GenConfig, seed: int, *, encoders: str | None = None
) -> None:
    """Random weights under the upstream names (weight norm as parametrizations): the loading code
    real checkpoints go through, at any size. Norms start at 1 and Snake alphas at 1, so the random
    model's activations stay in range. `encoders` ("tiny" or "full") adds the enrolment side, as
    the published file holds it: the speech tokenizer (`tokenizer.*`) and CAMPPlus
    (`speaker_encoder.*`, one size)."""
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
    if encoders is not None:
        tensors.update(speech_tokenizer_tensors(seed, encoders))
        tensors.update(campplus_tensors(seed))
    save_file(tensors, str(path))
