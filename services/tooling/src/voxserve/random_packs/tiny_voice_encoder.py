"""A random Chatterbox `ve.safetensors` at the real size (about 1.4M parameters)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from voxserve.vocoder.codecs.s3gen.voice_encoder import voice_encoder_shapes

INPUT_STD = 10.0
"""The first LSTM layer's input weights. Power mels of speech are small (about 1e-3 to 1 per bin at
ordinary levels): at PyTorch's default scale the gates barely see them and every voice gets the
same embedding; at this one, voices differ and loudness matters little."""
PROJ_BIAS = 0.01
"""The one non-zero bias. The top layer's hidden states are small (about 0.1), so larger or random
biases outweigh them and pull every voice to one direction; with none at all, an all-zero partial
(digital silence inside a reference) would project to zero and have no direction."""


def write_voice_encoder(path: Path, seed: int) -> None:
    """Random weights under the upstream names and shapes, at scales where different voices get
    different embeddings; the similarity scale and offset at upstream's initial values (10, -5)."""
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for name, shape in voice_encoder_shapes().items():
        if name == "similarity_weight":
            tensors[name] = torch.full(shape, 10.0)
        elif name == "similarity_bias":
            tensors[name] = torch.full(shape, -5.0)
        elif name == "lstm.weight_ih_l0":
            tensors[name] = torch.randn(shape, generator=generator) * INPUT_STD
        elif name == "proj.bias":
            tensors[name] = torch.full(shape, PROJ_BIAS)
        elif len(shape) == 1:
            tensors[name] = torch.zeros(shape)
        else:
            tensors[name] = torch.randn(shape, generator=generator) / shape[-1] ** 0.5
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
