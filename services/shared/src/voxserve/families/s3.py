"""The s3 family (CosyVoice2-style): an LM writing S3 speech tokens (25 a second, ids below 6561),
decoded by S3Gen (flow + HiFT, 24 kHz). The voice is the flow's prompt, a safetensors file:
prompt_tokens [P], prompt_mel [2P, 80], xvector [192]."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

from voxserve.families.family import Enrolment, Family, TokenGrammar, TokenKind, VoiceParts
from voxserve.v1 import vocoder_pb2

PROMPT_KEYS = ("prompt_tokens", "prompt_mel", "xvector")

GRAMMAR = TokenGrammar(
    "s3",
    re.compile(r"<\|speech_(\d+)\|>"),
    None,
    {
        TokenKind.START_SEMANTIC: "<|start_speech|>",
        TokenKind.END_SEMANTIC: "<|end_speech|>",
        TokenKind.EOS: "<|im_end|>",
    },
)


def read_s3_prompt(path: Path) -> vocoder_pb2.S3Prompt:
    """An s3 voice file as the vocoder's start message carries it. Shapes are checked here; the
    vocoder checks the rest."""
    try:
        tensors = load_file(str(path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"voice file {path}: {exc}") from exc
    missing = [k for k in PROMPT_KEYS if k not in tensors]
    if missing:
        raise ValueError(f"voice file {path} lacks {', '.join(missing)}")
    tokens, mel, xvector = (tensors[k] for k in PROMPT_KEYS)
    return s3_prompt(path, tokens, mel, xvector)


def s3_prompt(path: Path, tokens: np.ndarray, mel: np.ndarray, xvector: np.ndarray) -> vocoder_pb2.S3Prompt:
    """The flow's prompt, its shapes checked (`path` names the file in errors)."""
    if tokens.ndim != 1 or mel.ndim != 2 or mel.shape[0] != 2 * tokens.shape[0] or xvector.ndim != 1:
        raise ValueError(
            f"voice file {path}: expected prompt tokens [P], prompt mel [2P, bins], x-vector [D]; got "
            f"{list(tokens.shape)}, {list(mel.shape)}, {list(xvector.shape)}"
        )
    return vocoder_pb2.S3Prompt(
        prompt_tokens=tokens.astype(np.int64).tolist(),
        prompt_mel_f32=mel.astype("<f4").tobytes(),
        xvector=xvector.astype(np.float32).tolist(),
    )


def conditioning_file(entry: Mapping[str, Any], base: Path, voice: str) -> Path:
    """The voice file an s3 or chatterbox registry entry names (`voice` says which, in errors)."""
    if "conditioning" not in entry:
        raise ValueError(f"{voice} needs a conditioning file")
    return base / str(entry["conditioning"])


def read_voice(entry: Mapping[str, Any], base: Path) -> VoiceParts:
    return VoiceParts(s3_prompt=read_s3_prompt(conditioning_file(entry, base, "an s3 voice")))


def voice_from_encoding(encoded: vocoder_pb2.EncodedVoice, transcript: str | None) -> VoiceParts:
    """An enrolled voice: the flow's prompt (the transcript plays no part)."""
    return VoiceParts(s3_prompt=encoded.s3_prompt)


ENROLMENT = Enrolment(
    sample_rate=24000,
    # Upstream reads the reference with librosa: channels averaged, soxr "HQ", ceil length.
    channel_mix="mean",
    encoder_files=(),
    voice_parts=voice_from_encoding,
    resample_quality="HQ",
    exact_length=True,
)


FAMILY = Family(
    name="s3",
    summary="CosyVoice2-style: an LM writing S3 speech tokens, decoded by S3Gen at 24 kHz",
    identifying_path="s3gen.safetensors",
    pack_files=("LLM/config.json", "s3gen.safetensors"),
    sample_rate=24000,
    samples_per_token=960,
    codec="s3gen",
    # About 400 ms and 3.2 s of audio (40 ms tokens).
    first_chunk_tokens=10,
    max_chunk_tokens=80,
    read_voice=read_voice,
    generator_voice_fields=(),
    generator_voice_hint=(
        "this generator's pack (s3 family) has no voice tokens; its voice is the vocoder's prompt"
    ),
    grammar=GRAMMAR,
    registry_keys=("conditioning",),
    enrolment=ENROLMENT,
)
