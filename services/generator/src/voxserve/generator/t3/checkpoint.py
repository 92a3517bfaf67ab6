"""`t3_cfg.safetensors`: its tensors under the upstream names, a strict reader, and a writer of
random ones in the same layout (the loading code real weights go through, at any size)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from voxserve.generator.t3.config import T3Config

# Rows looked up rather than multiplied: drawn at a fixed scale, not by fan-in.
EMBEDDINGS = (
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


def _some(names: list[str]) -> str:
    shown = ", ".join(names[:_NAMED_OFFENDERS])
    more = len(names) - _NAMED_OFFENDERS
    return shown + (f" and {more} more" if more > 0 else "")
