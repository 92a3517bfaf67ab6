"""Random `t3_cfg.safetensors` checkpoints under the upstream names, at any size."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from voxserve.generator.t3.checkpoint import EMBEDDINGS, expected_shapes
from voxserve.generator.t3.config import T3Config


def write_random_t3(path: Path, config: T3Config, seed: int, dtype: torch.dtype = torch.float32) -> None:
    """Random weights under the upstream names, deterministic for a seed.

    Tensors are drawn one at a time and streamed to the file, so a full-size checkpoint (about
    520M parameters) never sits in memory at once. The scales keep a random model's activations
    and logits in a useful range: linear layers N(0, 1/fan_in) (unit-variance outputs), norms near
    1, small biases, embeddings at 0.5 and positions at 0.1 (so the token, not its position,
    dominates a row), and the heads three times wider than 1/fan_in, so logits over the 8194
    speech ids spread by a few units and greedy decoding is not decided by near-ties.
    """
    generator = torch.Generator().manual_seed(seed)

    def draw(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        noise = torch.randn(shape, generator=generator)
        if name.endswith("norm.weight"):  # RMSNorm and LayerNorm scales
            tensor = 1.0 + 0.1 * noise
        elif name.endswith(".bias"):
            tensor = 0.02 * noise
        elif name.endswith("pos_emb.emb.weight"):
            tensor = 0.1 * noise
        elif name in EMBEDDINGS:
            tensor = 0.5 * noise
        elif name in ("text_head.weight", "speech_head.weight"):
            tensor = noise * (3.0 / shape[-1] ** 0.5)
        else:  # a linear layer: rows are outputs, columns inputs
            tensor = noise / shape[-1] ** 0.5
        return tensor.to(dtype)

    _stream_safetensors(path, expected_shapes(config), dtype, draw)


_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def _stream_safetensors(
    path: Path,
    shapes: Mapping[str, tuple[int, ...]],
    dtype: torch.dtype,
    make: Callable[[str, tuple[int, ...]], torch.Tensor],
) -> None:
    """Write a safetensors file of `dtype` tensors whose header is known before any tensor
    exists: `make` builds them one by one, in order, and each is dropped once written. The
    layout is the format's own: an 8-byte little-endian header length, a JSON header padded with
    spaces to a multiple of 8 bytes, then the tensors' bytes back to back in header order."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = itemsize * math.prod(shape)
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for name, shape in shapes.items():
            tensor = make(name, shape)
            if tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype:
                raise AssertionError(
                    f"{name}: made {tuple(tensor.shape)} {tensor.dtype}, declared {shape} {dtype}"
                )
            # Raw bytes through a uint8 view: numpy has no bfloat16.
            out.write(tensor.contiguous().view(torch.uint8).numpy().tobytes())
