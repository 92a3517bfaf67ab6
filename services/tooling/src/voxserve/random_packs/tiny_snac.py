"""A small random SNAC in the layout of SNAC's releases (`config.json`, `pytorch_model.bin`).

The published `snac_24khz` config with fewer channels: the same rates, strides, codebooks,
kernels and noise blocks, so frames, hop and receptive field are the real ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from voxserve.vocoder.codecs.snac.codec import SNAC, SNAC_DIR, write_config

SNAC_24KHZ: dict[str, Any] = {
    "sampling_rate": 24000,
    "encoder_dim": 48,
    "encoder_rates": [2, 4, 8, 8],
    "latent_dim": None,
    "decoder_dim": 1024,
    "decoder_rates": [8, 8, 4, 2],
    "attn_window_size": None,
    "codebook_size": 4096,
    "codebook_dim": 8,
    "vq_strides": [4, 2, 1],
    "noise": True,
    "depthwise": True,
}
TINY = {**SNAC_24KHZ, "encoder_dim": 4, "decoder_dim": 64}


def write_snac(pack_dir: Path, config: dict[str, Any] = TINY, seed: int = 0) -> Path:
    """`<pack>/SNAC/` with random weights for `config`; returns that directory."""
    directory = pack_dir / SNAC_DIR
    write_config(directory, **config)
    torch.manual_seed(seed)
    model = SNAC(**config)
    torch.save(model.state_dict(), directory / "pytorch_model.bin")
    return directory
