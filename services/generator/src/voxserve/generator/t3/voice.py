"""A T3 voice: speaker embedding, prompt speech tokens and emotion exaggeration. Chatterbox
packs keep voices in `conds.pt`, read by `voxserve.families.conds`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from voxserve.families.conds import DEFAULT_EXAGGERATION, read_conds
from voxserve.generator.t3.config import FULL, MAX_EXAGGERATION, T3Config

# Upstream's prompt length: the first 6 s of the reference audio at 25 tokens a second.
MAX_PROMPT_TOKENS = 150


@dataclass(frozen=True)
class T3Voice:
    speaker_embedding: torch.Tensor  # float32 [speaker_dim]
    prompt_tokens: torch.Tensor  # int64 [P], 1 <= P <= MAX_PROMPT_TOKENS
    exaggeration: float = DEFAULT_EXAGGERATION

    def validate(self, config: T3Config = FULL, label: str = "voice ") -> None:
        """Raise ValueError naming the field (after `label`) and its limit. The limits that
        matter (speaker size, speech ids) are the same at every T3 size, hence the default."""
        e = self.speaker_embedding
        if tuple(e.shape) != (config.speaker_dim,) or not e.is_floating_point():
            raise ValueError(
                f"{label}speaker_embedding must be {config.speaker_dim} floats, "
                f"got {tuple(e.shape)} {e.dtype}"
            )
        if not torch.isfinite(e).all():
            raise ValueError(f"{label}speaker_embedding must be finite")
        p = self.prompt_tokens
        if p.ndim != 1 or p.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"{label}prompt_tokens must be a 1-D integer tensor, got {tuple(p.shape)} {p.dtype}"
            )
        # At least one: the perceiver's cross-attention over an empty prompt has no keys (and
        # upstream, given no prompt at all, builds 2 conditioning rows instead of 34).
        if not 1 <= p.numel() <= MAX_PROMPT_TOKENS:
            raise ValueError(
                f"{label}prompt_tokens has {p.numel()} tokens; it needs 1 to {MAX_PROMPT_TOKENS}"
            )
        # Prompt tokens are S3 speech tokens proper: the start/stop ids and above are not.
        if not (int(p.min()) >= 0 and int(p.max()) < config.speech_start):
            raise ValueError(f"{label}prompt_tokens must lie in [0, {config.speech_start})")
        x = self.exaggeration
        if not (math.isfinite(x) and 0.0 <= x <= MAX_EXAGGERATION):
            raise ValueError(
                f"{label}exaggeration must be a finite number in [0, {MAX_EXAGGERATION:g}], got {x}"
            )


def read_t3_voice(path: Path) -> T3Voice:
    """The T3 part of a Chatterbox `conds.pt` (see `voxserve.families.conds`)."""
    conds = read_conds(path)
    return T3Voice(
        torch.from_numpy(conds.speaker_embedding),
        torch.from_numpy(conds.t3_prompt_tokens),
        conds.exaggeration,
    )
