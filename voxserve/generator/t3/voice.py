"""A T3 voice (speaker embedding, prompt speech tokens, emotion exaggeration) and Chatterbox's
`conds.pt`, which holds one voice for both models: T3's part and S3Gen's (`S3Voice`).

`conds.pt` is a `torch.save` of upstream's `Conditionals`:

    {"t3": {"speaker_emb": [1, 256] float, "clap_emb": None,
            "cond_prompt_speech_tokens": [1, P] long, "cond_prompt_speech_emb": None,
            "emotion_adv": [1, 1, 1] float},
     "gen": {"prompt_token": [1, P2] long, "prompt_token_len": [1] long,
             "prompt_feat": [1, 2 * P2, 80] float, "prompt_feat_len": None,
             "embedding": [1, 192] float}}

It is read with `weights_only=True`: tensors, numbers and None only, never arbitrary objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from voxserve.generator.t3.config import FULL, MAX_EXAGGERATION, T3Config
from voxserve.vocoder.codecs.s3gen.voice import S3Voice

# Upstream's prompt length: the first 6 s of the reference audio at 25 tokens a second.
MAX_PROMPT_TOKENS = 150
DEFAULT_EXAGGERATION = 0.5


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

    @classmethod
    def random(
        cls, config: T3Config, prompt_tokens: int, seed: int, exaggeration: float = DEFAULT_EXAGGERATION
    ) -> T3Voice:
        """A random voice for small packs and tests. The embedding is non-negative with unit norm,
        like the voice encoder's (an L2-normalised ReLU output)."""
        g = torch.Generator().manual_seed(seed)
        embedding = torch.randn(config.speaker_dim, generator=g).abs()
        return cls(
            embedding / embedding.norm(),
            torch.randint(0, config.speech_start, (prompt_tokens,), generator=g),
            exaggeration,
        )


def write_conds(path: Path, t3: T3Voice, s3: S3Voice) -> None:
    """Write both models' parts of a voice as upstream's `conds.pt`."""
    tokens = s3.prompt_tokens.to(torch.int64)
    conds = {
        "t3": {
            "speaker_emb": t3.speaker_embedding.to(torch.float32).reshape(1, -1).contiguous(),
            "clap_emb": None,
            "cond_prompt_speech_tokens": t3.prompt_tokens.to(torch.int64).reshape(1, -1).contiguous(),
            "cond_prompt_speech_emb": None,
            "emotion_adv": torch.full((1, 1, 1), float(t3.exaggeration)),
        },
        "gen": {
            "prompt_token": tokens.reshape(1, -1).contiguous(),
            "prompt_token_len": torch.tensor([tokens.numel()], dtype=torch.int64),
            "prompt_feat": s3.prompt_mel.to(torch.float32)[None].contiguous(),
            "prompt_feat_len": None,
            "embedding": s3.xvector.to(torch.float32).reshape(1, -1).contiguous(),
        },
    }
    torch.save(conds, path)


def read_conds(path: Path) -> tuple[T3Voice, S3Voice]:
    """Both parts of a `conds.pt`, batch dimension dropped. Raises ValueError naming what the file
    lacks; the values are checked against a model only by `validate` (T3Voice, S3Voice)."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # a damaged pickle fails in many ways (struct, EOF, unpickling)
        raise ValueError(f"{path}: not a readable conditionals file: {exc}") from exc
    t3, gen = _part(raw, "t3", path), _part(raw, "gen", path)

    exaggeration = t3.get("emotion_adv", DEFAULT_EXAGGERATION)  # upstream's T3Cond default
    if isinstance(exaggeration, torch.Tensor):
        if exaggeration.numel() != 1:
            raise ValueError(f"{path}: t3.emotion_adv must hold one value, got {tuple(exaggeration.shape)}")
        exaggeration = exaggeration.reshape(())
    t3_voice = T3Voice(
        _single(t3, "t3", "speaker_emb", path).to(torch.float32),
        _single(t3, "t3", "cond_prompt_speech_tokens", path).to(torch.int64),
        float(exaggeration),
    )

    tokens = _single(gen, "gen", "prompt_token", path).to(torch.int64)
    lengths = gen.get("prompt_token_len")
    if isinstance(lengths, torch.Tensor) and lengths.numel() == 1 and int(lengths) != tokens.numel():
        raise ValueError(
            f"{path}: gen.prompt_token_len is {int(lengths)} but gen.prompt_token has {tokens.numel()} tokens"
        )
    s3_voice = S3Voice(
        tokens,
        _single(gen, "gen", "prompt_feat", path).to(torch.float32),
        _single(gen, "gen", "embedding", path).to(torch.float32),
    )
    return t3_voice, s3_voice


def _part(raw: Any, name: str, path: Path) -> dict[str, Any]:
    part = raw.get(name) if isinstance(raw, dict) else None
    if not isinstance(part, dict):
        raise ValueError(f"{path}: lacks the {name!r} part of a conditionals file (keys t3 and gen)")
    return part


def _single(part: dict[str, Any], part_name: str, key: str, path: Path) -> torch.Tensor:
    """`part[key]` without its batch dimension of one."""
    value = part.get(key)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{path}: lacks {part_name}.{key}")
    if value.ndim < 2 or value.shape[0] != 1:
        raise ValueError(
            f"{path}: {part_name}.{key} must have a batch dimension of 1, got {tuple(value.shape)}"
        )
    return value[0].contiguous()
