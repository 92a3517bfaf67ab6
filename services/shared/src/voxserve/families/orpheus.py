"""Orpheus (Llama 3.2 writing SNAC codes, 24 kHz): a frame is 7 codes of a 4096-code book, one
frame per 2048 samples. The audio token of position p, code c is `<custom_token_{10 + p * 4096 + c}>`;
the first custom tokens are its markers. The voice is a speaker name in the prompt."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from voxserve.families.family import Family, TokenGrammar, TokenKind, VoiceParts
from voxserve.families.speakers import check_speaker_name

CODES_PER_FRAME = 7
CODEBOOK_SIZE = 4096
AUDIO_TOKEN_OFFSET = 10

GRAMMAR = TokenGrammar(
    "orpheus",
    re.compile(r"<custom_token_(\d+)>"),
    None,
    {
        TokenKind.START_SEMANTIC: "<custom_token_1>",  # start of speech
        TokenKind.END_SEMANTIC: "<custom_token_2>",  # end of speech
        TokenKind.EOS: "<|eot_id|>",
    },
    semantic_offset=AUDIO_TOKEN_OFFSET,
    semantic_count=CODES_PER_FRAME * CODEBOOK_SIZE,
)


def read_voice(entry: Mapping[str, Any], base: Path) -> VoiceParts:
    speaker = entry.get("speaker")
    if speaker is None:
        raise ValueError("an orpheus voice needs a speaker name")
    check_speaker_name(speaker)
    if "global_ids" in entry or "gender" in entry:
        raise ValueError("a speaker voice takes no global_ids or style")
    return VoiceParts(speaker=speaker)


FAMILY = Family(
    name="orpheus",
    summary="Orpheus: Llama writing 7 SNAC codes per frame, 24 kHz",
    identifying_path="SNAC",
    pack_files=("LLM/config.json", "SNAC/config.json"),
    sample_rate=24000,
    samples_per_token=2048,
    codes_per_token=CODES_PER_FRAME,
    codec="snac",
    # About 171 ms and 1 s of audio (85 ms frames).
    first_chunk_tokens=2,
    max_chunk_tokens=12,
    read_voice=read_voice,
    generator_voice_fields=("speaker",),
    generator_voice_hint="this generator's pack (orpheus family) takes a speaker name",
    grammar=GRAMMAR,
    registry_keys=("speaker",),
)
