"""An S3Gen voice: prompt speech tokens, their mel (two frames per token) and an x-vector,
stored as a safetensors file the voice registry points to.

Enrolling a voice from reference audio needs the S3 speech tokenizer and the CAMPPlus x-vector
model (`tokenizer.*` and `speaker_encoder.*` in upstream checkpoints); `S3Voice` is what that
enrolment produces, so it can be added without touching decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from voxserve.vocoder.codecs.base import CodecInputError
from voxserve.vocoder.codecs.s3gen.config import FlowConfig

KEYS = ("prompt_tokens", "prompt_mel", "xvector")
MAX_PROMPT_TOKENS = 1500


@dataclass(frozen=True)
class S3Voice:
    prompt_tokens: torch.Tensor  # int64 [P]
    prompt_mel: torch.Tensor  # float32 [2P, 80]
    xvector: torch.Tensor  # float32 [192]

    def validate(
        self, config: FlowConfig, max_prompt_tokens: int = MAX_PROMPT_TOKENS, label: str = "voice "
    ) -> None:
        """Raise CodecInputError naming the field (after `label`) and the limit."""
        p = self.prompt_tokens
        if p.ndim != 1 or p.dtype not in (torch.int32, torch.int64):
            raise CodecInputError(
                f"{label}prompt_tokens must be a 1-D integer tensor, got {tuple(p.shape)} {p.dtype}"
            )
        if p.numel() > max_prompt_tokens:
            raise CodecInputError(
                f"{label}prompt_tokens has {p.numel()} tokens; the limit is {max_prompt_tokens}"
            )
        if p.numel() and not (0 <= int(p.min()) and int(p.max()) < config.vocab_size):
            raise CodecInputError(f"{label}prompt_tokens must lie in [0, {config.vocab_size})")
        frames = config.token_mel_ratio * p.numel()
        if tuple(self.prompt_mel.shape) != (frames, config.mel_bins):
            raise CodecInputError(
                f"{label}prompt_mel has shape {tuple(self.prompt_mel.shape)}; "
                f"expected ({frames}, {config.mel_bins}): {config.token_mel_ratio} frames per prompt token"
            )
        if tuple(self.xvector.shape) != (config.speaker_dim,):
            raise CodecInputError(
                f"{label}xvector has shape {tuple(self.xvector.shape)}; expected ({config.speaker_dim},)"
            )
        if not (torch.isfinite(self.prompt_mel).all() and torch.isfinite(self.xvector).all()):
            raise CodecInputError(f"{label}prompt_mel and {label}xvector must be finite")

    @classmethod
    def load(cls, path: str | Path, config: FlowConfig) -> S3Voice:
        try:
            tensors = load_file(str(path))
        except (OSError, ValueError) as exc:
            raise CodecInputError(f"voice file {path}: {exc}") from exc
        missing = [k for k in KEYS if k not in tensors]
        if missing:
            raise CodecInputError(f"voice file {path} lacks {', '.join(missing)}")
        voice = cls(tensors["prompt_tokens"], tensors["prompt_mel"], tensors["xvector"])
        voice.validate(config)
        return voice
