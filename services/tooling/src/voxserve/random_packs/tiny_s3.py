"""A random pack of the `s3` family: an LM writing S3 speech tokens, and an S3Gen vocoder.

Layout (the vocoder half is Chatterbox's; the LM is a Qwen2 directory like Spark's `LLM/`):

    LLM/                Qwen2 config, tokenizer with <|speech_0|> .. <|speech_6560|> and the
                        <|start_speech|> / <|end_speech|> markers, model.safetensors
    s3gen.safetensors   S3Gen under the upstream tensor names (flow.*, mel2wav.*)
    s3gen.json          S3Gen sizes; without it the full-size config applies
    voices/default.safetensors   the default voice (prompt tokens, prompt mel, x-vector)
    voices.json         the pack's voice registry, pointing at the voice files
"""

from __future__ import annotations

import json
from pathlib import Path

from voxserve.random_packs.s3gen_checkpoint import write_random_s3gen
from voxserve.random_packs.tiny_llm import SPARK_0_5B_LLM, TINY_LLM, s3_added_tokens, write_llm
from voxserve.random_packs.voices import random_s3_voice, save_s3_voice
from voxserve.vocoder.codecs.s3gen.codec import CHECKPOINT_FILE, CONFIG_FILE, config_to_json
from voxserve.vocoder.codecs.s3gen.config import FULL, TINY

VOICES_FILE = "voices.json"
# Prompt length of the default voice: two seconds of speech tokens.
DEFAULT_PROMPT_TOKENS = 50


def write_s3_pack(root: Path, seed: int, size: str = "tiny") -> None:
    full = size == "full"
    config = FULL if full else TINY
    write_llm(root / "LLM", seed, SPARK_0_5B_LLM if full else TINY_LLM, s3_added_tokens())
    write_random_s3gen(root / CHECKPOINT_FILE, config, seed, encoders=size)
    (root / CONFIG_FILE).write_text(config_to_json(config) + "\n")
    voices = root / "voices"
    voices.mkdir(exist_ok=True)
    save_s3_voice(random_s3_voice(config.flow, DEFAULT_PROMPT_TOKENS, seed), voices / "default.safetensors")
    registry = {
        "voices": [
            {
                "id": "default",
                "family": "s3",
                "description": "The pack's default prompt voice",
                "conditioning": "voices/default.safetensors",
            }
        ]
    }
    (root / VOICES_FILE).write_text(json.dumps(registry, indent=2) + "\n")
