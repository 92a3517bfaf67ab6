"""Spark-TTS (Qwen2 LLM + BiCodec, 16 kHz): the model writes 32 BiCodec global tokens (the voice)
then semantic tokens at 50 a second. A voice fixes the globals, sets a controllable style (the
model writes its own globals) or names a speaker of a speaker-name fine-tune."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from voxserve.families.family import Enrolment, Family, TokenGrammar, TokenKind, VoiceParts
from voxserve.families.speakers import check_speaker_name
from voxserve.v1 import vocoder_pb2

GLOBAL_TOKENS_PER_VOICE = 32
GLOBAL_VOCAB = 4096
GENDERS = ("female", "male")
STYLE_LEVELS = range(5)  # pitch and speed: 0..4, 2 is neutral

GRAMMAR = TokenGrammar(
    "spark",
    re.compile(r"<\|bicodec_semantic_(\d+)\|>"),
    re.compile(r"<\|bicodec_global_(\d+)\|>"),
    {
        TokenKind.START_GLOBAL: "<|start_global_token|>",
        TokenKind.END_GLOBAL: "<|end_global_token|>",
        TokenKind.START_SEMANTIC: "<|start_semantic_token|>",
        TokenKind.END_SEMANTIC: "<|end_semantic_token|>",
        TokenKind.EOS: "<|im_end|>",
    },
)


def read_voice(entry: Mapping[str, Any], base: Path) -> VoiceParts:
    speaker = entry.get("speaker")
    if speaker is not None:
        check_speaker_name(speaker)
        if "global_ids" in entry or "gender" in entry:
            raise ValueError("a speaker voice takes no global_ids or style")
        return VoiceParts(speaker=speaker)
    ids = entry.get("global_ids")
    if ids is not None and (
        not isinstance(ids, list)
        or len(ids) != GLOBAL_TOKENS_PER_VOICE
        or not all(isinstance(g, int) and 0 <= g < GLOBAL_VOCAB for g in ids)
    ):
        raise ValueError(f"global_ids must be {GLOBAL_TOKENS_PER_VOICE} ids in [0, {GLOBAL_VOCAB})")
    gender = entry.get("gender", "female")
    if gender not in GENDERS:
        raise ValueError("gender must be female or male")
    pitch, speed = entry.get("pitch", 2), entry.get("speed", 2)
    if not all(isinstance(v, int) and v in STYLE_LEVELS for v in (pitch, speed)):
        raise ValueError("pitch and speed must be integers 0..4")
    return VoiceParts(
        global_ids=tuple(ids) if ids is not None else None, gender=gender, pitch=pitch, speed=speed
    )


def voice_from_encoding(encoded: vocoder_pb2.EncodedVoice, transcript: str | None) -> VoiceParts:
    """An enrolled voice: its global ids, and with a transcript the reference's semantic ids."""
    reference = tuple(encoded.reference_semantic_ids) if transcript else ()
    return VoiceParts(
        global_ids=tuple(encoded.global_ids),
        reference_text=transcript if reference else None,
        reference_semantic_ids=reference,
    )


ENROLMENT = Enrolment(
    sample_rate=16000,
    # Upstream's loader keeps channel 0 of a multi-channel file.
    channel_mix="first",
    encoder_files=("wav2vec2-large-xlsr-53/config.json",),
    voice_parts=voice_from_encoding,
    transcript_tokens=True,
)


FAMILY = Family(
    name="spark",
    summary="Spark-TTS: Qwen2 writing BiCodec global and semantic tokens, 16 kHz",
    identifying_path="BiCodec",
    pack_files=("LLM/config.json", "BiCodec/config.yaml"),
    sample_rate=16000,
    samples_per_token=320,
    codec="bicodec",
    # About 200 ms and 1.6 s of audio (20 ms tokens).
    first_chunk_tokens=10,
    max_chunk_tokens=80,
    read_voice=read_voice,
    generator_voice_fields=("global_tokens", "style", "speaker"),
    generator_voice_hint="this generator's pack (spark family) takes global tokens, a style or a speaker",
    grammar=GRAMMAR,
    voice_from_generator=True,
    registry_keys=("global_ids", "gender", "pitch", "speed", "speaker"),
    enrolment=ENROLMENT,
)
