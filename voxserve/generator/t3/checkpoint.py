"""`t3_cfg.safetensors`: its tensors under the upstream names, a strict reader, and a writer of
random ones in the same layout (the loading code real weights go through, at any size)."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from voxserve.generator.t3.config import T3Config

# Rows looked up rather than multiplied: drawn at a fixed scale, not by fan-in.
_EMBEDDINGS = (
    "tfmr.embed_tokens.weight",
    "text_emb.weight",
    "speech_emb.weight",
    "cond_enc.perceiver.pre_attention_query",
)
# How many offending names an error spells out before it only counts the rest.
_NAMED_OFFENDERS = 5


def expected_shapes(config: T3Config) -> dict[str, tuple[int, ...]]:
    """Every tensor of the checkpoint and its shape, in the order of the published key table."""
    h, ffn = config.hidden, config.intermediate
    q_rows, kv_rows = config.heads * config.head_dim, config.kv_heads * config.head_dim
    shapes: dict[str, tuple[int, ...]] = {"tfmr.embed_tokens.weight": (config.unused_embed_rows, h)}
    for i in range(config.layers):
        p = f"tfmr.layers.{i}"
        shapes |= {
            f"{p}.self_attn.q_proj.weight": (q_rows, h),
            f"{p}.self_attn.k_proj.weight": (kv_rows, h),
            f"{p}.self_attn.v_proj.weight": (kv_rows, h),
            f"{p}.self_attn.o_proj.weight": (h, q_rows),
            f"{p}.mlp.gate_proj.weight": (ffn, h),
            f"{p}.mlp.up_proj.weight": (ffn, h),
            f"{p}.mlp.down_proj.weight": (h, ffn),
            f"{p}.input_layernorm.weight": (h,),
            f"{p}.post_attention_layernorm.weight": (h,),
        }
    shapes |= {
        "tfmr.norm.weight": (h,),
        "cond_enc.spkr_enc.weight": (h, config.speaker_dim),
        "cond_enc.spkr_enc.bias": (h,),
        "cond_enc.emotion_adv_fc.weight": (h, 1),
        "cond_enc.perceiver.pre_attention_query": (1, config.perceiver_queries, h),
        "cond_enc.perceiver.attn.norm.weight": (h,),
        "cond_enc.perceiver.attn.norm.bias": (h,),
    }
    for proj in ("to_q", "to_k", "to_v", "proj_out"):
        shapes |= {
            f"cond_enc.perceiver.attn.{proj}.weight": (h, h),
            f"cond_enc.perceiver.attn.{proj}.bias": (h,),
        }
    shapes |= {
        "text_emb.weight": (config.text_vocab, h),
        "speech_emb.weight": (config.speech_vocab, h),
        "text_pos_emb.emb.weight": (config.text_positions, h),
        "speech_pos_emb.emb.weight": (config.speech_positions, h),
        "text_head.weight": (config.text_vocab, h),
        "speech_head.weight": (config.speech_vocab, h),
    }
    return shapes


def check_t3_tensors(shapes: Mapping[str, tuple[int, ...]], config: T3Config, source: str) -> None:
    """Raise ValueError naming the first missing, unexpected and misshapen tensors of `source`."""
    expected = expected_shapes(config)
    missing = [name for name in expected if name not in shapes]
    unexpected = [name for name in shapes if name not in expected]
    misshapen = [
        f"{name} {tuple(shape)} (expected {expected[name]})"
        for name, shape in shapes.items()
        if name in expected and tuple(shape) != expected[name]
    ]
    problems = [
        f"{label} {_some(names)}"
        for label, names in (("missing", missing), ("unexpected", unexpected), ("misshapen", misshapen))
        if names
    ]
    if problems:
        raise ValueError(f"{source} does not match the T3 layout: {'; '.join(problems)}")


def read_t3_state(path: Path, config: T3Config, prefixes: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors as stored (only those whose names start with one of `prefixes`,
    when given), after a strict check of all names and shapes (read from the header first, so a
    wrong file fails before any weight is read)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            names = list(f.keys())
            check_t3_tensors({n: tuple(f.get_slice(n).get_shape()) for n in names}, config, str(path))
            wanted = [n for n in expected_shapes(config) if not prefixes or n.startswith(prefixes)]
            return {name: f.get_tensor(name) for name in wanted}
    except SafetensorError as exc:
        raise ValueError(f"{path}: not a readable safetensors file: {exc}") from exc


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
        elif name in _EMBEDDINGS:
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


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMED_OFFENDERS])
    more = len(names) - _NAMED_OFFENDERS
    return shown + (f" and {more} more" if more > 0 else "")
