"""Checkpoint names and shapes, the receptive field, and loading upstream weights."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from voxserve.vocoder.codecs.bicodec.config import BiCodecConfig, BiCodecLoadError
from voxserve.vocoder.codecs.bicodec.model import BiCodecDecoder, WNConv1d, WNConvTranspose1d

_WEIGHT_NORMED = (WNConv1d, WNConvTranspose1d)
_NEW_WN_SUFFIXES = {
    "weight_g": "parametrizations.weight.original0",
    "weight_v": "parametrizations.weight.original1",
}


def build_meta_decoder(config: BiCodecConfig) -> BiCodecDecoder:
    """The module on the meta device: shapes and structure without memory."""
    with torch.device("meta"):
        return BiCodecDecoder(config)


def _checkpoint_entries(model: nn.Module) -> Iterator[tuple[str, str, tuple[int, ...]]]:
    """(checkpoint key, parameter name, checkpoint shape) for every parameter of `model`."""
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            shape = tuple(param.shape)
            if isinstance(module, _WEIGHT_NORMED) and param_name == "weight":
                yield f"{module_name}.weight_g", full, (shape[0],) + (1,) * (len(shape) - 1)
                yield f"{module_name}.weight_v", full, shape
            else:
                yield full, full, shape


def checkpoint_shapes(config: BiCodecConfig) -> dict[str, tuple[int, ...]]:
    """Decode-path checkpoint key -> shape, weight-norm in the stored `weight_g`/`weight_v` form."""
    return {key: shape for key, _, shape in _checkpoint_entries(build_meta_decoder(config))}


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


def _fold_weight_norm(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    v64 = v.to(torch.float64)
    norm = torch.linalg.vector_norm(v64, dim=tuple(range(1, v.ndim)), keepdim=True)
    return v64 * (g.to(torch.float64) / norm)


def _listing(items: list[str], sep: str, limit: int = 20) -> str:
    shown = sep.join(items[:limit])
    return shown if len(items) <= limit else f"{shown}{sep}... ({len(items) - limit} more)"


def load_decode_state_dict(
    path: str | Path, config: BiCodecConfig, *, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """Read the decode-path tensors of a BiCodec `model.safetensors`, weight-norm folded.

    Accepts `weight_g`/`weight_v` and `parametrizations.weight.original0/1`; every other tensor in
    the file (the encoder side) is ignored. Raises BiCodecLoadError naming missing or misshapen
    tensors.
    """
    entries = list(_checkpoint_entries(build_meta_decoder(config)))
    raw: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    with safe_open(str(path), framework="pt", device="cpu") as f:
        available = set(f.keys())
        for key, _, shape in entries:
            source = key
            prefix, _, suffix = key.rpartition(".")
            if key not in available and suffix in _NEW_WN_SUFFIXES:
                source = f"{prefix}.{_NEW_WN_SUFFIXES[suffix]}"
            if source not in available:
                missing.append(key)
                continue
            found = tuple(f.get_slice(source).get_shape())
            if found != shape:
                mismatched.append(f"{source}: expected {shape}, found {found}")
                continue
            raw[key] = f.get_tensor(source)
    if missing or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensor(s): {_listing(missing, ', ')}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): {_listing(mismatched, '; ')}")
        raise BiCodecLoadError(f"BiCodec checkpoint {path}: " + " | ".join(parts))

    state: dict[str, torch.Tensor] = {}
    for key, param_name, _ in entries:
        if key.endswith(".weight_g"):
            continue
        if key.endswith(".weight_v"):
            tensor = _fold_weight_norm(raw[key.removesuffix("_v") + "_g"], raw[key])
        else:
            tensor = raw[key]
        state[param_name] = tensor.to(device=device, dtype=dtype)
    return state
