"""Checkpoint names and shapes, the receptive field, and loading upstream weights."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from voxserve.vocoder.codecs.bicodec.config import BiCodecConfig, BiCodecLoadError
from voxserve.vocoder.codecs.bicodec.model import BiCodecDecoder
from voxserve.vocoder.codecs.checkpoint import LEGACY, CheckpointError, checkpoint_entries, load_state_dict


def build_meta_decoder(config: BiCodecConfig) -> BiCodecDecoder:
    """The module on the meta device: shapes and structure without memory."""
    with torch.device("meta"):
        return BiCodecDecoder(config)


def checkpoint_shapes(config: BiCodecConfig) -> dict[str, tuple[int, ...]]:
    """Decode-path checkpoint key -> shape, weight-norm in the stored `weight_g`/`weight_v` form."""
    return {key: shape for key, _, shape in checkpoint_entries(build_meta_decoder(config))}


def conv_chain(model: BiCodecDecoder) -> list[nn.Module]:
    """The convolutions on the token-to-waveform path, in forward order."""
    return [m for m in model.modules() if isinstance(m, nn.Conv1d | nn.ConvTranspose1d)]


def receptive_field_tokens(model: BiCodecDecoder) -> int:
    """One-sided context, in tokens, that makes a window's middle decode exactly as a full decode.

    Walks the convolutions backwards from the samples of one token, tracking the interval of
    positions each layer's input needs. Every layer zero-pads, so each of those intervals must lie
    inside the window at that layer's rate; the answer is the largest such need, rounded up.
    """
    layers = conv_chain(model)
    rate = math.prod(m.stride[0] for m in layers if isinstance(m, nn.ConvTranspose1d))
    lo, hi = 0, rate - 1
    need = 0
    for m in reversed(layers):
        k, s, p, d = (int(v[0]) for v in (m.kernel_size, m.stride, m.padding, m.dilation))  # type: ignore[index]
        if isinstance(m, nn.ConvTranspose1d):
            # Input i feeds outputs i * s - p + j for j in [0, k).
            lo, hi = -((k - 1 - lo - p) // s), (hi + p) // s
            rate //= s
        else:
            if s != 1:
                raise ValueError("strided convolutions are not part of the BiCodec decode path")
            lo, hi = lo - p, hi - p + d * (k - 1)
        need = max(need, -(lo // rate), -((rate - 1 - hi) // rate))
    return need


def load_decode_state_dict(
    path: str | Path, config: BiCodecConfig, *, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """Read the decode-path tensors of a BiCodec `model.safetensors`, weight-norm folded.

    Accepts `weight_g`/`weight_v` and `parametrizations.weight.original0/1`; every other tensor in
    the file (the encoder side) is ignored. Raises BiCodecLoadError naming missing or misshapen
    tensors.
    """
    try:
        return load_state_dict(
            path,
            build_meta_decoder(config),
            naming=LEGACY,
            dtype=dtype,
            device=device,
            label="BiCodec checkpoint",
        )
    except CheckpointError as exc:
        raise BiCodecLoadError(str(exc)) from exc
