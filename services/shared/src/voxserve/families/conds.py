"""Chatterbox's `conds.pt`: one voice for both of its models, read without torch.

The file is a `torch.save` of upstream's `Conditionals`:

    {"t3": {"speaker_emb": [1, 256] float, "clap_emb": None,
            "cond_prompt_speech_tokens": [1, P] long, "cond_prompt_speech_emb": None,
            "emotion_adv": [1, 1, 1] float},
     "gen": {"prompt_token": [1, P2] long, "prompt_token_len": [1] long,
             "prompt_feat": [1, 2 * P2, 80] float, "prompt_feat_len": None,
             "embedding": [1, 192] float}}

Every service reads it here, with one strictness: the gateway (no torch) for its voices, the
generator for a pack's default voice. Values are checked against a model by the services.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxserve.families.torch_file import read_torch_file

# Upstream's T3Cond default when a file has no emotion_adv.
DEFAULT_EXAGGERATION = 0.5


@dataclass(frozen=True)
class Conditionals:
    """A `conds.pt` with the batch dimension dropped."""

    speaker_embedding: np.ndarray  # float32 [speaker_dim]
    t3_prompt_tokens: np.ndarray  # int64 [P]
    exaggeration: float
    s3_prompt_tokens: np.ndarray  # int64 [P2]
    prompt_mel: np.ndarray  # float32 [2 * P2, mel bins]
    xvector: np.ndarray  # float32 [192]


def read_conds(path: Path) -> Conditionals:
    """Both parts of a `conds.pt`. Raises ValueError naming what the file lacks."""
    try:
        raw = read_torch_file(path)
    except OSError:
        raise
    except ValueError as exc:
        raise ValueError(f"{path}: not a readable conditionals file: {exc}") from exc
    t3, gen = _part(raw, "t3", path), _part(raw, "gen", path)

    exaggeration = t3.get("emotion_adv", DEFAULT_EXAGGERATION)
    if isinstance(exaggeration, np.ndarray):
        if exaggeration.size != 1:
            raise ValueError(f"{path}: t3.emotion_adv must hold one value, got {tuple(exaggeration.shape)}")
        exaggeration = exaggeration.reshape(())
    if exaggeration is None:
        exaggeration = DEFAULT_EXAGGERATION

    tokens = _single(gen, "gen", "prompt_token", path).astype(np.int64)
    lengths = gen.get("prompt_token_len")
    if isinstance(lengths, np.ndarray) and lengths.size == 1 and int(lengths.reshape(())) != tokens.size:
        raise ValueError(
            f"{path}: gen.prompt_token_len is {int(lengths.reshape(()))} but gen.prompt_token has "
            f"{tokens.size} tokens"
        )
    return Conditionals(
        speaker_embedding=_single(t3, "t3", "speaker_emb", path).astype(np.float32),
        t3_prompt_tokens=_single(t3, "t3", "cond_prompt_speech_tokens", path).astype(np.int64),
        exaggeration=float(exaggeration),
        s3_prompt_tokens=tokens,
        prompt_mel=_single(gen, "gen", "prompt_feat", path).astype(np.float32),
        xvector=_single(gen, "gen", "embedding", path).astype(np.float32),
    )


def _part(raw: Any, name: str, path: Path) -> dict[str, Any]:
    part = raw.get(name) if isinstance(raw, dict) else None
    if not isinstance(part, dict):
        raise ValueError(f"{path}: lacks the {name!r} part of a conditionals file (keys t3 and gen)")
    return part


def _single(part: dict[str, Any], part_name: str, key: str, path: Path) -> np.ndarray:
    """`part[key]` without its batch dimension of one."""
    value = part.get(key)
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{path}: lacks {part_name}.{key}")
    if value.ndim < 2 or value.shape[0] != 1:
        raise ValueError(
            f"{path}: {part_name}.{key} must have a batch dimension of 1, got {tuple(value.shape)}"
        )
    return np.ascontiguousarray(value[0])
