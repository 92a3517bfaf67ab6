"""A random pack of the `chatterbox` family: Chatterbox's T3 (text -> S3 speech tokens) and its
S3Gen vocoder, in the layout of the published ResembleAI/chatterbox files.

Layout:

    t3_cfg.safetensors  T3 under the upstream tensor names (`voxserve.generator.t3.checkpoint`)
    t3.json             T3 sizes (tiny packs only); without it the full-size config applies
    tokenizer.json      the text tokenizer: 704-id BPE, [STOP]=0 [UNK]=1 [SPACE]=2 [START]=255
    s3gen.safetensors   S3Gen under the upstream tensor names (flow.*, mel2wav.*), with the
                        enrolment side: the speech tokenizer (tokenizer.*) and CAMPPlus
                        (speaker_encoder.*)
    s3gen.json          S3Gen sizes; without it the full-size config applies
    ve.safetensors      the voice encoder (enrolment: T3's speaker embedding)
    conds.pt            the default voice, both models' parts (`voxserve.generator.t3.voice`)
    voices/narrator.pt  a second voice in the same format
    voices.json         the pack's voice registry, pointing at the conditioning files

A real Chatterbox download (t3_cfg.safetensors, s3gen.safetensors, tokenizer.json, conds.pt,
ve.safetensors) is a pack of this family as it is; voices.json is optional.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from voxserve.generator.t3 import config as t3_config
from voxserve.generator.t3.text import TOKENIZER_FILE
from voxserve.generator.t3.voice import DEFAULT_EXAGGERATION, MAX_PROMPT_TOKENS
from voxserve.random_packs.s3gen_checkpoint import write_random_s3gen
from voxserve.random_packs.t3_checkpoint import write_random_t3
from voxserve.random_packs.t3_tokenizer import write_tokenizer
from voxserve.random_packs.tiny_s3 import DEFAULT_PROMPT_TOKENS, VOICES_FILE
from voxserve.random_packs.tiny_voice_encoder import write_voice_encoder
from voxserve.random_packs.voices import random_s3_voice, random_t3_voice, write_conds
from voxserve.vocoder.codecs.s3gen import config as s3gen_config
from voxserve.vocoder.codecs.s3gen.codec import CHECKPOINT_FILE as S3GEN_CHECKPOINT
from voxserve.vocoder.codecs.s3gen.codec import CONFIG_FILE as S3GEN_CONFIG
from voxserve.vocoder.codecs.s3gen.codec import config_to_json
from voxserve.vocoder.codecs.s3gen.voice_encoder import WEIGHTS_FILE as VOICE_ENCODER_FILE

CONDS_FILE = "conds.pt"
NARRATOR_FILE = "voices/narrator.pt"
NARRATOR_EXAGGERATION = 0.7


def write_chatterbox_pack(root: Path, seed: int, size: str = "tiny") -> None:
    """Write the pack into `root` (created if missing); the same seed gives the same weights and
    voices. "full" has the real sizes: T3 in float32 as upstream runs it (about 2.1 GB)."""
    full = size == "full"
    t3 = t3_config.FULL if full else t3_config.TINY
    s3gen = s3gen_config.FULL if full else s3gen_config.TINY
    root = Path(root)
    (root / "voices").mkdir(parents=True, exist_ok=True)

    write_random_t3(root / t3_config.CHECKPOINT_FILE, t3, seed, torch.float32)
    if not full:
        (root / t3_config.CONFIG_FILE).write_text(t3.to_json() + "\n")
    write_tokenizer(root / TOKENIZER_FILE)
    write_random_s3gen(root / S3GEN_CHECKPOINT, s3gen, seed, encoders=size)
    (root / S3GEN_CONFIG).write_text(config_to_json(s3gen) + "\n")
    write_voice_encoder(root / VOICE_ENCODER_FILE, seed)

    voices = (
        ("default", CONDS_FILE, seed, DEFAULT_EXAGGERATION, "The pack's default voice"),
        ("narrator", NARRATOR_FILE, seed + 1, NARRATOR_EXAGGERATION, "A second voice, more expressive"),
    )
    entries = []
    for voice_id, file, voice_seed, exaggeration, description in voices:
        write_conds(
            root / file,
            random_t3_voice(t3, MAX_PROMPT_TOKENS, voice_seed, exaggeration),
            random_s3_voice(s3gen.flow, DEFAULT_PROMPT_TOKENS, voice_seed),
        )
        entries.append(
            {"id": voice_id, "family": "chatterbox", "description": description, "conditioning": file}
        )
    (root / VOICES_FILE).write_text(json.dumps({"voices": entries}, indent=2) + "\n")
