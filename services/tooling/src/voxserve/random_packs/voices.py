"""Random voices for small packs and tests, and the voice files packs carry: an s3 voice's
safetensors file and Chatterbox's `conds.pt` (both models' parts of one voice)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from voxserve.families.conds import DEFAULT_EXAGGERATION, read_conds
from voxserve.generator.t3.config import T3Config
from voxserve.generator.t3.voice import T3Voice, read_t3_voice
from voxserve.vocoder.codecs.s3gen.config import FlowConfig
from voxserve.vocoder.codecs.s3gen.voice import S3Voice


def random_t3_voice(
    config: T3Config, prompt_tokens: int, seed: int, exaggeration: float = DEFAULT_EXAGGERATION
) -> T3Voice:
    """A random voice for small packs and tests. The embedding is non-negative with unit norm,
    like the voice encoder's (an L2-normalised ReLU output)."""
    g = torch.Generator().manual_seed(seed)
    embedding = torch.randn(config.speaker_dim, generator=g).abs()
    return T3Voice(
        embedding / embedding.norm(),
        torch.randint(0, config.speech_start, (prompt_tokens,), generator=g),
        exaggeration,
    )


def random_s3_voice(config: FlowConfig, prompt_tokens: int, seed: int) -> S3Voice:
    """A random voice for small packs and tests."""
    g = torch.Generator().manual_seed(seed)
    return S3Voice(
        torch.randint(0, config.vocab_size, (prompt_tokens,), generator=g),
        torch.randn(config.token_mel_ratio * prompt_tokens, config.mel_bins, generator=g) * 0.5 - 5.0,
        torch.randn(config.speaker_dim, generator=g),
    )


def save_s3_voice(voice: S3Voice, path: str | Path) -> None:
    save_file(
        {
            "prompt_tokens": voice.prompt_tokens.to(torch.int64).contiguous(),
            "prompt_mel": voice.prompt_mel.to(torch.float32).contiguous(),
            "xvector": voice.xvector.to(torch.float32).contiguous(),
        },
        str(path),
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


def read_conds_voices(path: Path) -> tuple[T3Voice, S3Voice]:
    """Both models' voices of a `conds.pt`, as torch tensors (to check what a pack carries)."""
    conds = read_conds(path)
    s3 = S3Voice(
        torch.from_numpy(conds.s3_prompt_tokens),
        torch.from_numpy(conds.prompt_mel),
        torch.from_numpy(conds.xvector),
    )
    return read_t3_voice(path), s3
