"""A stored voice's conditioning written in its family's upstream file format: Chatterbox's
`conds.pt` (both models' parts) or an s3 voice file (the flow's prompt, safetensors)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from voxserve.families.conds import DEFAULT_EXAGGERATION
from voxserve.generator.t3.voice import T3Voice
from voxserve.random_packs.voices import save_s3_voice, write_conds
from voxserve.v1 import vocoder_pb2
from voxserve.vocoder.codecs.s3gen.voice import S3Voice

MEL_BINS = 80


def s3_voice(prompt: vocoder_pb2.S3Prompt) -> S3Voice:
    mel = np.frombuffer(prompt.prompt_mel_f32, dtype="<f4").reshape(-1, MEL_BINS)
    return S3Voice(
        torch.tensor(list(prompt.prompt_tokens), dtype=torch.int64),
        torch.from_numpy(mel.copy()),
        torch.tensor(list(prompt.xvector), dtype=torch.float32),
    )


def write_voice_file(conditioning: vocoder_pb2.EncodedVoice, path: Path) -> str:
    """Writes the file and returns what it is ("conds.pt" or "s3 voice"); ValueError for a voice
    whose conditioning has no upstream file (spark: its global ids are the whole voice)."""
    if not conditioning.HasField("s3_prompt"):
        raise ValueError("this voice has no file format upstream: its conditioning is token ids")
    prompt = s3_voice(conditioning.s3_prompt)
    if conditioning.HasField("chatterbox"):
        t3 = conditioning.chatterbox
        exaggeration = t3.exaggeration if t3.HasField("exaggeration") else DEFAULT_EXAGGERATION
        voice = T3Voice(
            torch.tensor(list(t3.speaker_embedding), dtype=torch.float32),
            torch.tensor(list(t3.prompt_tokens), dtype=torch.int64),
            exaggeration,
        )
        write_conds(path, voice, prompt)
        return "conds.pt"
    save_s3_voice(prompt, path)
    return "s3 voice"
