"""wav2vec2 features for the BiCodec semantic path, checked against transformers' own model."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from transformers import Wav2Vec2Config as HFWav2Vec2Config
from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

from tests.services.vocoder.key_tables import assert_matches_key_table
from voxserve.random_packs.tiny_wav2vec2 import write_wav2vec2
from voxserve.vocoder.codecs.base import CodecInputError
from voxserve.vocoder.codecs.bicodec.config import BiCodecLoadError
from voxserve.vocoder.codecs.bicodec.wav2vec2 import (
    Wav2Vec2Config,
    Wav2Vec2Trunk,
    checkpoint_entries,
    fold_pos_conv_weight,
    wav2vec2_checkpoint_shapes,
)
from voxserve.vocoder.codecs.bicodec.wav2vec2_features import (
    FEATURE_LAYERS,
    WAV2VEC2_DIR,
    Wav2Vec2Features,
    missing_wav2vec2_files,
    normalize_wave,
)
from voxserve.vocoder.codecs.checkpoint import LEGACY, PARAMETRIZED

# sha256 of specs/wav2vec2-xlsr53-keys.tsv as sorted "name<TAB>shape" rows (shape a Python tuple).
XLSR53_KEYS_SHA256 = "92e7f58472b513bbed95ab33a6a83da7a685309c83eba37b29c790b04a57d0fa"
POS_CONV = "encoder.pos_conv_embed.conv."


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("w2v-pack")
    write_wav2vec2(root, seed=0, size="tiny")
    return root


@pytest.fixture(scope="module")
def features(pack: Path) -> Wav2Vec2Features:
    return Wav2Vec2Features.from_dir(pack / WAV2VEC2_DIR)


def stored_state(directory: Path) -> dict[str, torch.Tensor]:
    return torch.load(directory / "pytorch_model.bin", weights_only=True)


def hf_model(directory: Path, dtype: torch.dtype = torch.float32) -> Wav2Vec2Model:
    """transformers' complete model (every layer) with the directory's weights."""
    model = Wav2Vec2Model(HFWav2Vec2Config.from_json_file(directory / "config.json"))
    state = {
        key.removeprefix("wav2vec2.")
        .replace("weight_g", PARAMETRIZED[0])
        .replace("weight_v", PARAMETRIZED[1]): value
        for key, value in stored_state(directory).items()
        if key.startswith("wav2vec2.")
    }
    model.load_state_dict(state, strict=True)
    return model.to(dtype).eval()


def hf_features(model: Wav2Vec2Model, input_values: torch.Tensor) -> tuple[torch.Tensor, int]:
    with torch.no_grad():
        hidden = model(input_values, output_hidden_states=True).hidden_states
    return sum((hidden[k] for k in FEATURE_LAYERS[1:]), hidden[FEATURE_LAYERS[0]]) / len(FEATURE_LAYERS), len(
        hidden
    )


def wave(num_samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / 16000
    return 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(num_samples)


def test_state_dict_names_equal_the_published_table() -> None:
    shapes = wav2vec2_checkpoint_shapes(Wav2Vec2Config.xlsr53(), PARAMETRIZED)
    assert_matches_key_table(shapes, XLSR53_KEYS_SHA256, "wav2vec2-xlsr53-keys.tsv")
    legacy = wav2vec2_checkpoint_shapes(Wav2Vec2Config.xlsr53(), LEGACY)
    assert legacy[POS_CONV + "weight_g"] == (1, 1, 128)
    assert legacy[POS_CONV + "weight_v"] == (1024, 64, 128)
    assert len(legacy) == len(shapes) == 422


def test_the_trunk_holds_only_what_the_features_use() -> None:
    config = Wav2Vec2Config.xlsr53()
    with torch.device("meta"):
        trunk = Wav2Vec2Trunk(config, max(FEATURE_LAYERS))
    mine = {key: shape for key, _, shape in checkpoint_entries(trunk, PARAMETRIZED)}
    full = wav2vec2_checkpoint_shapes(config, PARAMETRIZED)
    assert {key: full[key] for key in mine} == mine
    left_out = set(full) - set(mine)
    later = {key for key in left_out if key.startswith("encoder.layers.")}
    assert {int(key.split(".")[2]) for key in later} == set(range(16, 24))
    assert left_out - later == {"masked_spec_embed", "encoder.layer_norm.weight", "encoder.layer_norm.bias"}


@pytest.mark.parametrize(
    "change", [{"do_stable_layer_norm": False}, {"feat_extract_norm": "group"}, {"hidden_act": "relu"}]
)
def test_unsupported_variants_are_refused(change: dict[str, object]) -> None:
    raw = {"do_stable_layer_norm": True, "feat_extract_norm": "layer", **change}
    with pytest.raises(BiCodecLoadError, match="wav2vec2 config"):
        Wav2Vec2Config.from_dict(raw)


@pytest.mark.parametrize("num_samples", [400, 719, 720, 12345, 16000, 96000])
def test_frame_count_is_floor_of_length_minus_80_over_320(
    features: Wav2Vec2Features, num_samples: int
) -> None:
    out = features(wave(num_samples))
    expected = (num_samples - 80) // 320
    assert out.shape == (1, expected, 32)
    assert features.frame_count(num_samples) == expected
    assert {16000: 49, 96000: 299}.get(num_samples, expected) == expected


def test_too_short_or_multichannel_waves_are_refused(features: Wav2Vec2Features) -> None:
    assert features.frame_count(399) == 0
    with pytest.raises(CodecInputError, match="shorter than one frame"):
        features(wave(399))
    with pytest.raises(CodecInputError, match="1-D"):
        features(np.zeros((2, 16000)))


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_features_equal_the_full_transformers_model(pack: Path, dtype: torch.dtype, tolerance: float) -> None:
    directory = pack / WAV2VEC2_DIR
    ours = Wav2Vec2Features.from_dir(directory, dtype=dtype)
    assert len(ours.model.encoder.layers) == max(FEATURE_LAYERS)
    x = wave(9000, seed=3)
    got = ours(x)
    reference = hf_model(directory, dtype)
    assert reference.config.num_hidden_layers > max(FEATURE_LAYERS)
    expected, count = hf_features(reference, torch.from_numpy(normalize_wave(x)).to(dtype)[None])
    assert count == reference.config.num_hidden_layers + 1
    assert got.dtype == dtype
    scale = expected.abs().max().item()
    assert (got - expected).abs().max().item() <= tolerance * scale

    # The layers after 16 (and the final LayerNorm) cannot move the average: scramble them.
    with torch.no_grad():
        for layer in reference.encoder.layers[max(FEATURE_LAYERS) :]:
            for param in layer.parameters():
                param.normal_()
        reference.encoder.layer_norm.weight.mul_(-3.0)
    scrambled, _ = hf_features(reference, torch.from_numpy(normalize_wave(x)).to(dtype)[None])
    assert torch.equal(scrambled, expected)


def test_normalisation_is_the_feature_extractors(pack: Path) -> None:
    x = wave(20000, seed=5) + 0.1
    ours = normalize_wave(x)
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(pack / WAV2VEC2_DIR)
    theirs = extractor(x, sampling_rate=16000, padding=True, return_tensors="np").input_values[0]
    assert ours.dtype == np.float32
    assert np.array_equal(ours, theirs)
    x32 = x.astype(np.float32).astype(np.float64)
    formula = (x32 - x32.mean()) / np.sqrt(((x32 - x32.mean()) ** 2).mean() + 1e-7)
    np.testing.assert_allclose(ours, formula, atol=1e-5)
    assert abs(float(ours.mean())) < 1e-5
    assert abs(float(ours.var()) - 1.0) < 1e-4
    assert np.all(np.isfinite(normalize_wave(np.full(1000, 0.25))))


def _rename(key: str, prefix: bool, naming: tuple[str, str]) -> str:
    key = key.removeprefix("wav2vec2.") if key.startswith("wav2vec2.") else key
    for legacy, chosen in zip(LEGACY, naming, strict=True):
        if key.endswith("." + legacy):
            key = key[: -len(legacy)] + chosen
    return ("wav2vec2." + key) if prefix else key


# (file, `wav2vec2.` prefix, weight-norm naming, pre-training heads kept, transformer layers kept)
VARIANTS = [
    ("model.safetensors", False, PARAMETRIZED, False, 18),
    ("model.safetensors", True, LEGACY, True, 18),
    ("pytorch_model.bin", False, PARAMETRIZED, True, 18),
    ("model.safetensors", False, LEGACY, False, 16),
]


@pytest.mark.parametrize(("file", "prefix", "naming", "heads", "layers"), VARIANTS)
def test_every_stored_form_loads_quietly_to_the_same_features(
    pack: Path,
    features: Wav2Vec2Features,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    file: str,
    prefix: bool,
    naming: tuple[str, str],
    heads: bool,
    layers: int,
) -> None:
    source = pack / WAV2VEC2_DIR
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(source / name, tmp_path / name)
    state = {}
    for key, value in stored_state(source).items():
        if not key.startswith("wav2vec2.") and not heads:
            continue
        if key.startswith("wav2vec2.encoder.layers.") and int(key.split(".")[3]) >= layers:
            continue
        state[_rename(key, prefix and key.startswith("wav2vec2."), naming)] = value
    assert any(k.startswith("quantizer.") for k in state) == heads
    if file.endswith(".safetensors"):
        save_file(state, str(tmp_path / file))
    else:
        torch.save(state, tmp_path / file)
    capsys.readouterr()
    with caplog.at_level(logging.DEBUG):
        loaded = Wav2Vec2Features.from_dir(tmp_path)
        x = wave(5000, seed=1)
        out = loaded(x)
    assert capsys.readouterr() == ("", "")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert torch.equal(out, features(x))


def test_missing_and_misshapen_tensors_are_named(pack: Path, tmp_path: Path) -> None:
    source = pack / WAV2VEC2_DIR
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(source / name, tmp_path / name)
    state = stored_state(source)
    del state["wav2vec2.encoder.layers.3.attention.q_proj.weight"]
    del state["wav2vec2.encoder.pos_conv_embed.conv.weight_g"]
    state["wav2vec2.feature_projection.projection.bias"] = torch.zeros(7)
    del state["wav2vec2.encoder.layers.17.feed_forward.output_dense.bias"]  # not needed: no error
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(BiCodecLoadError) as info:
        Wav2Vec2Features.from_dir(tmp_path)
    message = str(info.value)
    assert "2 missing tensor(s)" in message
    assert "encoder.layers.3.attention.q_proj.weight" in message
    assert "encoder.pos_conv_embed.conv.weight_g" in message
    assert "feature_projection.projection.bias: expected (32,), found (7,)" in message
    assert "layers.17" not in message


def test_missing_files_are_listed_relative_to_the_pack(pack: Path, tmp_path: Path) -> None:
    assert missing_wav2vec2_files(pack) == []
    assert missing_wav2vec2_files(tmp_path) == [
        f"{WAV2VEC2_DIR}/config.json",
        f"{WAV2VEC2_DIR}/preprocessor_config.json",
        f"{WAV2VEC2_DIR}/pytorch_model.bin",
    ]
    directory = tmp_path / WAV2VEC2_DIR
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({}), encoding="utf-8")
    (directory / "model.safetensors").write_bytes(b"")
    assert missing_wav2vec2_files(tmp_path) == [f"{WAV2VEC2_DIR}/preprocessor_config.json"]


def test_features_are_deterministic(pack: Path, features: Wav2Vec2Features) -> None:
    x = wave(12000, seed=9)
    first = features(x)
    assert torch.equal(first, features(x))
    assert torch.equal(first, Wav2Vec2Features.from_dir(pack / WAV2VEC2_DIR)(x))
    assert torch.isfinite(first).all()


def test_pos_conv_fold_equals_torch_weight_norm_over_the_kernel() -> None:
    torch.manual_seed(0)
    conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv1d(8, 8, 6, groups=2), dim=2)
    g = conv.parametrizations.weight.original0.detach()
    v = conv.parametrizations.weight.original1.detach()
    assert g.shape == (1, 1, 6)
    folded = fold_pos_conv_weight(g * 1.7, v)
    with torch.no_grad():
        conv.parametrizations.weight.original0.mul_(1.7)
        expected = conv.weight.to(torch.float64)
    torch.testing.assert_close(folded, expected, rtol=1e-6, atol=1e-7)
