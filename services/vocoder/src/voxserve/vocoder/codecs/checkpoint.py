"""Reading upstream safetensors checkpoints into decode modules.

Upstream vocoders store weight-normed convolutions either as `weight_g`/`weight_v` (the old
`torch.nn.utils.weight_norm`) or as `parametrizations.weight.original0/1` (its replacement).
Both load; the decode modules hold the folded weight, so a forward pays nothing for the norm.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn


class WNConv1d(nn.Conv1d):
    """A Conv1d whose checkpoint tensors are weight-normed."""


class WNConvTranspose1d(nn.ConvTranspose1d):
    """A ConvTranspose1d whose checkpoint tensors are weight-normed."""


WEIGHT_NORMED = (WNConv1d, WNConvTranspose1d)
LEGACY = ("weight_g", "weight_v")
PARAMETRIZED = ("parametrizations.weight.original0", "parametrizations.weight.original1")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the missing or misshapen tensors."""


def checkpoint_entries(
    model: nn.Module, naming: tuple[str, str] = LEGACY
) -> Iterator[tuple[str, str, tuple[int, ...]]]:
    """(checkpoint key, parameter name, checkpoint shape) for every parameter of `model`, with
    weight-normed weights as their (g, v) pair in `naming`."""
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            shape = tuple(param.shape)
            if isinstance(module, WEIGHT_NORMED) and param_name == "weight":
                yield f"{module_name}.{naming[0]}", full, (shape[0],) + (1,) * (len(shape) - 1)
                yield f"{module_name}.{naming[1]}", full, shape
            else:
                yield full, full, shape


def fold_weight_norm(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """g * v / |v|, the norm over every dimension but the first (in float64)."""
    v64 = v.to(torch.float64)
    norm = torch.linalg.vector_norm(v64, dim=tuple(range(1, v.ndim)), keepdim=True)
    return v64 * (g.to(torch.float64) / norm)


def _listing(items: list[str], sep: str, limit: int = 20) -> str:
    shown = sep.join(items[:limit])
    return shown if len(items) <= limit else f"{shown}{sep}... ({len(items) - limit} more)"


def check_found(label: str, path: str | Path, missing: list[str], mismatched: list[str]) -> None:
    """Raise CheckpointError naming every missing and misshapen tensor, if there is any."""
    if not (missing or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing tensor(s): {_listing(missing, ', ')}")
    if mismatched:
        parts.append(f"{len(mismatched)} shape mismatch(es): {_listing(mismatched, '; ')}")
    raise CheckpointError(f"{label} {path}: " + " | ".join(parts))


def _other_naming(key: str, naming: tuple[str, str]) -> str | None:
    other = PARAMETRIZED if naming == LEGACY else LEGACY
    for mine, theirs in zip(naming, other, strict=True):
        if key.endswith("." + mine):
            return key[: -len(mine)] + theirs
    return None


def load_state_dict(
    path: str | Path,
    meta_model: nn.Module,
    *,
    naming: tuple[str, str] = LEGACY,
    prefix: str = "",
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    label: str = "checkpoint",
) -> dict[str, torch.Tensor]:
    """The tensors `meta_model` needs from a safetensors file, weight norm folded.

    `prefix` is prepended to every key (e.g. "flow."); tensors of the file outside the module are
    ignored. Raises CheckpointError naming every missing or misshapen tensor.
    """
    entries = list(checkpoint_entries(meta_model, naming))
    raw: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    with safe_open(str(path), framework="pt", device="cpu") as f:
        available = set(f.keys())
        for key, _, shape in entries:
            source = prefix + key
            if source not in available:
                alternative = _other_naming(source, naming)
                if alternative is None or alternative not in available:
                    missing.append(source)
                    continue
                source = alternative
            found = tuple(f.get_slice(source).get_shape())
            if found != shape:
                mismatched.append(f"{source}: expected {shape}, found {found}")
                continue
            raw[key] = f.get_tensor(source)
    check_found(label, path, missing, mismatched)

    state: dict[str, torch.Tensor] = {}
    for key, param_name, _ in entries:
        if key.endswith("." + naming[0]):
            continue
        if key.endswith("." + naming[1]):
            tensor = fold_weight_norm(raw[key[: -len(naming[1])] + naming[0]], raw[key])
        else:
            tensor = raw[key]
        state[param_name] = tensor.to(device=device, dtype=dtype)
    return state
