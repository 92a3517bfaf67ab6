from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config as HFWav2Vec2Config
from transformers import Wav2Vec2ForPreTraining, Wav2Vec2Model

from tests.services.vocoder.key_tables import assert_matches_key_table
from voxserve.random_packs.tiny_bicodec import TINY_BICODEC_CONFIG
from voxserve.random_packs.tiny_wav2vec2 import (
    FULL_WAV2VEC2_CONFIG,
    PREPROCESSOR_CONFIG,
    TINY_WAV2VEC2_CONFIG,
    write_wav2vec2,
)
from voxserve.vocoder.codecs.bicodec.wav2vec2_features import FEATURE_LAYERS, WAV2VEC2_DIR, Wav2Vec2Features

XLSR53_KEYS_SHA256 = "92e7f58472b513bbed95ab33a6a83da7a685309c83eba37b29c790b04a57d0fa"
FILES = ("config.json", "preprocessor_config.json", "pytorch_model.bin")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wav2vec2(tmp_path_factory.mktemp("pack"), seed=0, size="tiny")


def test_layout_and_configs(tiny_dir: Path) -> None:
    assert tiny_dir.name == WAV2VEC2_DIR
    assert sorted(p.name for p in tiny_dir.iterdir()) == sorted(FILES)
    assert json.loads((tiny_dir / "config.json").read_text(encoding="utf-8")) == TINY_WAV2VEC2_CONFIG
    assert (
        json.loads((tiny_dir / "preprocessor_config.json").read_text(encoding="utf-8")) == PREPROCESSOR_CONFIG
    )
    assert {
        k: PREPROCESSOR_CONFIG[k] for k in ("do_normalize", "feature_size", "padding_value", "sampling_rate")
    } == {
        "do_normalize": True,
        "feature_size": 1,
        "padding_value": 0.0,
        "sampling_rate": 16000,
    }
    assert PREPROCESSOR_CONFIG["return_attention_mask"] is True


def test_full_config_has_the_xlsr53_values() -> None:
    full = FULL_WAV2VEC2_CONFIG
    expected = {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
        "do_stable_layer_norm": True,
        "feat_extract_norm": "layer",
        "feat_extract_activation": "gelu",
        "conv_bias": True,
        "conv_dim": [512] * 7,
        "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
        "conv_stride": [5, 2, 2, 2, 2, 2, 2],
        "num_conv_pos_embeddings": 128,
        "num_conv_pos_embedding_groups": 16,
    }
    assert {key: full[key] for key in expected} == expected


def test_full_config_gives_transformers_the_published_tensor_names() -> None:
    with torch.device("meta"):
        model = Wav2Vec2Model(HFWav2Vec2Config(**FULL_WAV2VEC2_CONFIG))
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert_matches_key_table(shapes, XLSR53_KEYS_SHA256, "wav2vec2-xlsr53-keys.tsv")


def test_tiny_config_keeps_the_frame_structure() -> None:
    tiny, full = TINY_WAV2VEC2_CONFIG, FULL_WAV2VEC2_CONFIG
    assert tiny["hidden_size"] == TINY_BICODEC_CONFIG["audio_tokenizer"]["encoder"]["input_channels"] == 32
    assert tiny["num_hidden_layers"] > max(FEATURE_LAYERS)
    assert (tiny["conv_kernel"], tiny["conv_stride"]) == (full["conv_kernel"], full["conv_stride"])
    assert tiny["do_stable_layer_norm"] and tiny["feat_extract_norm"] == "layer"


def test_weights_are_a_pretraining_checkpoint_transformers_loads(tiny_dir: Path) -> None:
    stored = torch.load(tiny_dir / "pytorch_model.bin", weights_only=True)
    assert all(value.dtype == torch.float32 for value in stored.values())
    assert "wav2vec2.encoder.pos_conv_embed.conv.weight_g" in stored
    assert not any("parametrizations" in key for key in stored)
    assert {key for key in stored if not key.startswith("wav2vec2.")} == {
        "quantizer.codevectors",
        "quantizer.weight_proj.weight",
        "quantizer.weight_proj.bias",
        "project_hid.weight",
        "project_hid.bias",
        "project_q.weight",
        "project_q.bias",
    }
    pretraining = Wav2Vec2ForPreTraining(HFWav2Vec2Config(**TINY_WAV2VEC2_CONFIG))
    expected = {
        key.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): tuple(value.shape)
        for key, value in pretraining.state_dict().items()
    }
    assert {key: tuple(value.shape) for key, value in stored.items()} == expected

    _, info = Wav2Vec2Model.from_pretrained(tiny_dir, output_loading_info=True)
    assert info["missing_keys"] == set() and info["mismatched_keys"] == set()


def test_same_seed_same_bytes(tmp_path: Path, tiny_dir: Path) -> None:
    write_wav2vec2(tmp_path / "a", seed=0, size="tiny")
    write_wav2vec2(tmp_path / "b", seed=1, size="tiny")
    for name in FILES:
        assert (tmp_path / "a" / WAV2VEC2_DIR / name).read_bytes() == (tiny_dir / name).read_bytes()
    weights = f"{WAV2VEC2_DIR}/pytorch_model.bin"
    assert (tmp_path / "a" / weights).read_bytes() != (tmp_path / "b" / weights).read_bytes()


def test_features_have_a_sensible_scale(tiny_dir: Path) -> None:
    wave = 0.3 * np.sin(2 * np.pi * 200 * np.arange(16000) / 16000)
    feats = Wav2Vec2Features.from_dir(tiny_dir)(wave)
    assert feats.shape == (1, 49, 32)
    assert torch.isfinite(feats).all()
    assert 0.1 < feats.std().item() < 100
    # Frames differ from one another: the positional convolution and attention see the signal.
    assert feats[0].std(dim=0).mean().item() > 1e-3


def test_unknown_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tiny"):
        write_wav2vec2(tmp_path, seed=0, size="medium")
