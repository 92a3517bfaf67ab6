"""A random `wav2vec2-large-xlsr-53/` in the layout Spark-TTS packs ship.

`config.json`, `preprocessor_config.json` and a `pytorch_model.bin` as facebook's release stores
it: a `Wav2Vec2ForPreTraining` state dict (`wav2vec2.` prefix, pre-training heads, the positional
convolution's weight norm as `weight_g`/`weight_v`). "tiny" keeps the convolution strides and
kernels (320 samples a frame, 400 for the first) with small widths and 18 layers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from voxserve.vocoder.codecs.bicodec.wav2vec2 import Wav2Vec2Config, wav2vec2_checkpoint_shapes
from voxserve.vocoder.codecs.bicodec.wav2vec2_features import PREFIX, WAV2VEC2_DIR
from voxserve.vocoder.codecs.checkpoint import LEGACY

FULL_WAV2VEC2_CONFIG: dict[str, Any] = {
    "architectures": ["Wav2Vec2ForPreTraining"],
    "model_type": "wav2vec2",
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-05,
    "do_stable_layer_norm": True,
    "feat_extract_norm": "layer",
    "feat_extract_activation": "gelu",
    "conv_bias": True,
    "conv_dim": [512] * 7,
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "num_feat_extract_layers": 7,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "hidden_dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "feat_proj_dropout": 0.1,
    "layerdrop": 0.1,
    "apply_spec_augment": True,
    "mask_time_prob": 0.075,
    "mask_time_length": 10,
    "mask_feature_prob": 0.0,
    "mask_feature_length": 10,
    "num_codevector_groups": 2,
    "num_codevectors_per_group": 320,
    "codevector_dim": 768,
    "proj_codevector_dim": 768,
    "vocab_size": 32,
    "pad_token_id": 0,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

TINY_WAV2VEC2_CONFIG: dict[str, Any] = {
    **FULL_WAV2VEC2_CONFIG,
    # 32 = the tiny BiCodec's `encoder.input_channels`; 18 layers so that layers past 16 exist.
    "hidden_size": 32,
    "num_hidden_layers": 18,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": [32] * 7,
    "num_codevectors_per_group": 8,
    "codevector_dim": 16,
    "proj_codevector_dim": 16,
}

PREPROCESSOR_CONFIG: dict[str, Any] = {
    "do_normalize": True,
    "feature_extractor_type": "Wav2Vec2FeatureExtractor",
    "feature_size": 1,
    "padding_side": "right",
    "padding_value": 0.0,
    "return_attention_mask": True,
    "sampling_rate": 16000,
}

WEIGHTS_FILE = "pytorch_model.bin"


def _head_shapes(raw: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """`Wav2Vec2ForPreTraining`'s tensors outside the model: the loader must skip them."""
    groups, per_group = raw["num_codevector_groups"], raw["num_codevectors_per_group"]
    code_dim, proj_dim = raw["codevector_dim"], raw["proj_codevector_dim"]
    return {
        "quantizer.codevectors": (1, groups * per_group, code_dim // groups),
        "quantizer.weight_proj.weight": (groups * per_group, raw["conv_dim"][-1]),
        "quantizer.weight_proj.bias": (groups * per_group,),
        "project_hid.weight": (proj_dim, raw["hidden_size"]),
        "project_hid.bias": (proj_dim,),
        "project_q.weight": (proj_dim, code_dim),
        "project_q.bias": (proj_dim,),
    }


def _init_tensor(key: str, shape: tuple[int, ...], hidden: int, gen: torch.Generator) -> torch.Tensor:
    """A random value at the scale a trained model has: unit LayerNorm gains, 1/sqrt(fan-in) weights."""

    def normal(std: float) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * std

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=gen)

    name = key.rsplit(".", 1)[-1]
    if key.endswith("masked_spec_embed"):
        return uniform(0.0, 1.0)
    if name == "weight_v":
        return normal(1.0)
    if name == "weight_g":
        # The positional conv (norm over dim 2): folded entries get std g / sqrt(hidden * in_per_group),
        # so g = sqrt(hidden / kernel) gives 1/sqrt(fan-in).
        return uniform(0.8, 1.2) * math.sqrt(hidden / shape[-1])
    if name == "bias":
        return normal(0.02)
    if len(shape) == 1:
        return uniform(0.8, 1.2)
    return normal(1.0 / math.sqrt(math.prod(shape[1:])))


def wav2vec2_state_dict(raw_config: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
    """Random `Wav2Vec2ForPreTraining` checkpoint tensors for a `config.json`."""
    config = Wav2Vec2Config.from_dict(raw_config)
    shapes = {PREFIX + key: shape for key, shape in wav2vec2_checkpoint_shapes(config, LEGACY).items()}
    shapes.update(_head_shapes(raw_config))
    gen = torch.Generator().manual_seed(seed)
    return {key: _init_tensor(key, shape, config.hidden_size, gen) for key, shape in sorted(shapes.items())}


def write_wav2vec2(pack_root: Path, seed: int, size: str) -> Path:
    """Write `<pack>/wav2vec2-large-xlsr-53/` ("tiny" or "full"); returns that directory."""
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    raw = FULL_WAV2VEC2_CONFIG if size == "full" else TINY_WAV2VEC2_CONFIG
    directory = Path(pack_root) / WAV2VEC2_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in (("config.json", raw), ("preprocessor_config.json", PREPROCESSOR_CONFIG)):
        (directory / name).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    torch.save(wav2vec2_state_dict(raw, seed), directory / WEIGHTS_FILE)
    return directory
