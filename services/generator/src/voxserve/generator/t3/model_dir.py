"""The directory vLLM loads T3 from: a model config naming the T3 architecture and carrying the
T3 sizes, beside a link to the pack's `t3_cfg.safetensors` (upstream ships no config file).

The config asks vLLM for three rotary position streams (`mrope_section`); `model` explains why.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from voxserve.generator.t3.config import CHECKPOINT_FILE, T3Config

ARCHITECTURE = "T3ForSpeechTokens"


def speech_origin(config: T3Config) -> int:
    """The rotary position just before every request's first speech step: at least the longest
    prompt minus one, so that no position is negative, and more than the longest text plus one, so
    a text row's index never equals its rotary position."""
    return config.cond_rows + config.text_positions + 2


def max_positions(config: T3Config) -> int:
    return speech_origin(config) + config.speech_positions


def model_config(config: T3Config) -> dict[str, object]:
    return {
        "architectures": [ARCHITECTURE],
        "model_type": "llama",
        "hidden_size": config.hidden,
        "intermediate_size": config.intermediate,
        "num_hidden_layers": config.layers,
        "num_attention_heads": config.heads,
        "num_key_value_heads": config.kv_heads,
        "head_dim": config.head_dim,
        "rms_norm_eps": config.rms_eps,
        # Both branches' logits side by side; `guidance` folds them back to the speech ids.
        "vocab_size": 2 * config.speech_vocab,
        "max_position_embeddings": max_positions(config),
        "mrope_section": [config.head_dim // 4, config.head_dim // 8, config.head_dim // 8],
        "tie_word_embeddings": False,
        "bos_token_id": config.speech_start,
        "eos_token_id": config.speech_stop,
        "dtype": "float32",
        "t3": dataclasses.asdict(config),
    }


def write_model_dir(directory: Path, checkpoint: Path, config: T3Config) -> Path:
    """Write (or refresh) the directory and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(model_config(config), indent=2) + "\n")
    link = directory / CHECKPOINT_FILE
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(checkpoint.resolve())
    return directory


def t3_engine_options() -> dict[str, Any]:
    """vLLM engine arguments a T3 model directory needs."""
    from voxserve.generator.t3.guidance import GuidanceProcessor

    return {
        "skip_tokenizer_init": True,
        "enable_prompt_embeds": True,
        # Off: a prompt's rotary positions depend on its length (`model`), so two prompts that
        # begin with the same rows (one voice) do not share the keys of those rows.
        "enable_prefix_caching": False,
        "logits_processors": [GuidanceProcessor],
        # No generation_config.json beside the weights; the request's settings are the settings.
        "generation_config": "vllm",
    }
