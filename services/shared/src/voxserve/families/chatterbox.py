"""Chatterbox (T3, a Llama with two KV caches for classifier-free guidance, writing S3 speech
tokens; S3Gen at 24 kHz). A voice is a `conds.pt` (`conds.py`): its T3 part goes to the generator
with every segment, its S3Gen part to the vocoder as an s3 voice's file does."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from voxserve.families import s3
from voxserve.families.conds import read_conds
from voxserve.families.family import Family, VoiceParts
from voxserve.v1 import generator_pb2, vocoder_pb2


def read_conds_voice(path: Path) -> tuple[generator_pb2.ChatterboxVoice, vocoder_pb2.S3Prompt]:
    """A `conds.pt` as the generator's voice and the vocoder's prompt. The services check values
    against their models."""
    conds = read_conds(path)
    voice = generator_pb2.ChatterboxVoice(
        speaker_embedding=conds.speaker_embedding.reshape(-1).tolist(),
        prompt_tokens=conds.t3_prompt_tokens.reshape(-1).tolist(),
        exaggeration=conds.exaggeration,
    )
    return voice, s3.s3_prompt(path, conds.s3_prompt_tokens, conds.prompt_mel, conds.xvector)


def read_voice(entry: Mapping[str, Any], base: Path) -> VoiceParts:
    t3, prompt = read_conds_voice(s3.conditioning_file(entry, base, "a chatterbox voice"))
    return VoiceParts(s3_prompt=prompt, chatterbox=t3)


def voice_from_encoding(encoded: vocoder_pb2.EncodedVoice, transcript: str | None) -> VoiceParts:
    """An enrolled voice: T3's part to the generator, the flow's prompt to the vocoder."""
    return VoiceParts(s3_prompt=encoded.s3_prompt, chatterbox=encoded.chatterbox)


ENROLMENT = dataclasses.replace(
    s3.ENROLMENT,
    encoder_files=("ve.safetensors",),
    voice_parts=voice_from_encoding,
    conditions_generator=True,
)


FAMILY = Family(
    name="chatterbox",
    summary="Chatterbox: T3 writing S3 speech tokens with classifier-free guidance, S3Gen at 24 kHz",
    identifying_path="t3_cfg.safetensors",
    pack_files=("t3_cfg.safetensors", "tokenizer.json", "s3gen.safetensors"),
    sample_rate=24000,
    samples_per_token=960,
    codec="s3gen",
    first_chunk_tokens=10,
    max_chunk_tokens=80,
    read_voice=read_voice,
    generator_voice_fields=("chatterbox",),
    generator_voice_hint="this generator's pack (chatterbox family) takes a chatterbox voice",
    sampling_fields=("guidance", "exaggeration"),
    default_voice_file="conds.pt",
    registry_keys=("conditioning",),
    enrolment=ENROLMENT,
)
