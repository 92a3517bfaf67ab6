"""BiCodec semantic encoder: names against the published table, forward against the spec's
arithmetic written out with plain torch functions, nearest neighbour against brute force."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from tests.services.vocoder.key_tables import assert_matches_key_table
from voxserve.random_packs.tiny_bicodec import TINY_BICODEC_CONFIG
from voxserve.random_packs.tiny_wav2vec2 import write_wav2vec2
from voxserve.vocoder.codecs.bicodec import BiCodecConfig, BiCodecLoadError, checkpoint_shapes
from voxserve.vocoder.codecs.bicodec.semantic_encoder import (
    SemanticEncoder,
    SemanticQuantizer,
    load_semantic_encoder,
    semantic_checkpoint_shapes,
)
from voxserve.vocoder.codecs.bicodec.wav2vec2_features import WAV2VEC2_DIR, Wav2Vec2Features

# sha256 of the semantic rows of specs/bicodec-encode-keys.tsv (encoder.*, quantizer.in_project.*,
# quantizer.codebook.weight) as sorted "name<TAB>shape" rows.
SEMANTIC_KEYS_SHA256 = "284e04cce99c3cf8d852734968dd052dd9e69d969d1e5eb84c600dfe43ade7df"
TINY = BiCodecConfig.from_dict(TINY_BICODEC_CONFIG)


def is_semantic(name: str) -> bool:
    return name.startswith(("encoder.", "quantizer.in_project.")) or name == "quantizer.codebook.weight"


def random_state(config: BiCodecConfig, seed: int) -> dict[str, torch.Tensor]:
    """Semantic tensors at sensible scales, plus tensors of the other paths the loader must skip."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in sorted(semantic_checkpoint_shapes(config).items()):
        if key.endswith((".weight_v", "codebook.weight")):
            value = torch.randn(shape, generator=gen)
        elif key.endswith((".weight_g", ".gamma")) or (len(shape) == 1 and key.endswith(".weight")):
            value = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith(".bias"):
            value = 0.02 * torch.randn(shape, generator=gen)
        else:
            value = torch.randn(shape, generator=gen) / math.sqrt(math.prod(shape[1:]))
        state[key] = value
    for key, shape in checkpoint_shapes(config).items():
        if key not in state:
            state[key] = torch.zeros(shape)
    state["quantizer.cluster_size"] = torch.zeros(config.quantizer.codebook_size)
    return state


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    path = tmp_path_factory.mktemp("bicodec") / "model.safetensors"
    state = random_state(TINY, seed=0)
    save_file(state, str(path))
    return path, state


def reference_backbone(sd: dict[str, torch.Tensor], p: str, x: torch.Tensor, layers: int) -> torch.Tensor:
    """Spec 3.3: embed, LayerNorm, ConvNeXt blocks, final LayerNorm; [B, C, T] -> [B, T, C]."""
    dim = sd[p + "embed.bias"].shape[0]

    def ln(y: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(y, (dim,), sd[p + name + ".weight"], sd[p + name + ".bias"], eps=1e-6)

    x = F.conv1d(x, sd[p + "embed.weight"], sd[p + "embed.bias"], padding=3)
    x = ln(x.transpose(1, 2), "norm").transpose(1, 2)
    for i in range(layers):
        q = f"convnext.{i}."
        y = F.conv1d(x, sd[p + q + "dwconv.weight"], sd[p + q + "dwconv.bias"], padding=3, groups=dim)
        y = ln(y.transpose(1, 2), q + "norm")
        y = F.linear(y, sd[p + q + "pwconv1.weight"], sd[p + q + "pwconv1.bias"])
        y = F.linear(F.gelu(y), sd[p + q + "pwconv2.weight"], sd[p + q + "pwconv2.bias"])
        x = x + (sd[p + q + "gamma"] * y).transpose(1, 2)
    return ln(x.transpose(1, 2), "final_layer_norm")


def reference_latents(sd: dict[str, torch.Tensor], features: torch.Tensor, layers: int) -> torch.Tensor:
    """features [B, T, C_in] -> z [B, C_out, T]."""
    h = reference_backbone(sd, "encoder.encoder.", features.transpose(1, 2), layers)
    for i in (0, 1):
        h = reference_backbone(sd, f"encoder.downsample.{i}.1.", 3 * h.transpose(1, 2), 2)
    return F.linear(h, sd["encoder.project.weight"], sd["encoder.project.bias"]).transpose(1, 2)


def reference_ids(sd: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """Spec 3.4 as a cosine argmax: z [1, C, T] -> [T]."""
    g, v = sd["quantizer.in_project.weight_g"], sd["quantizer.in_project.weight_v"]
    w = g * v / v.norm(dim=(1, 2), keepdim=True)
    e = F.conv1d(z, w, sd["quantizer.in_project.bias"])[0].T
    return (F.normalize(e) @ F.normalize(sd["quantizer.codebook.weight"]).T).argmax(1)


def test_full_size_names_and_shapes_equal_the_published_table() -> None:
    shapes = semantic_checkpoint_shapes(BiCodecConfig.full_size())
    assert_matches_key_table(shapes, SEMANTIC_KEYS_SHA256, "bicodec-encode-keys.tsv", is_semantic)
    assert not any(key.startswith("encoder.downsample.0.0.") for key in shapes)
    assert len([k for k in shapes if k.startswith("encoder.downsample.0.1.convnext.")]) == 2 * 9


def test_a_decode_only_config_has_no_semantic_encoder() -> None:
    raw = {"audio_tokenizer": dict(TINY_BICODEC_CONFIG["audio_tokenizer"])}
    del raw["audio_tokenizer"]["encoder"]
    with pytest.raises(BiCodecLoadError, match="encoder"):
        SemanticEncoder(BiCodecConfig.from_dict(raw))


def test_forward_equals_the_spec_arithmetic(weights: tuple[Path, dict[str, torch.Tensor]]) -> None:
    path, state = weights
    sd = {k: v.to(torch.float64) for k, v in state.items()}
    model = load_semantic_encoder(path, TINY, dtype=torch.float64)
    features = torch.randn(1, 57, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        z = model.encoder(features.transpose(1, 2))
    expected = reference_latents(
        sd, features, TINY_BICODEC_CONFIG["audio_tokenizer"]["encoder"]["vocos_num_layers"]
    )
    torch.testing.assert_close(z, expected, rtol=1e-10, atol=1e-10)
    ids = model.semantic_ids(features)
    assert ids.dtype == torch.int64 and ids.shape == (57,)
    assert torch.equal(ids, reference_ids(sd, expected))


def test_nearest_neighbour_is_the_cosine_argmax() -> None:
    torch.manual_seed(0)
    quantizer = SemanticQuantizer(TINY.quantizer).to(torch.float64).eval()
    with torch.no_grad():
        quantizer.codebook.weight.mul_(torch.rand(TINY.quantizer.codebook_size, 1, dtype=torch.float64) * 5)
    z = torch.randn(2, TINY.quantizer.input_dim, 40, dtype=torch.float64)
    with torch.no_grad():
        ids = quantizer(z)
        e = quantizer.in_project(z)
    codebook = quantizer.codebook.weight.detach()
    for b in range(2):
        for t in range(40):
            cos = (codebook @ e[b, :, t]) / (codebook.norm(dim=1) * e[b, :, t].norm())
            assert ids[b, t].item() == int(cos.argmax())
    assert ids.shape == (2, 40) and ids.dtype == torch.int64
    assert len(set(ids.flatten().tolist())) > 20


def test_in_project_weight_norm_is_folded_per_output_channel(
    weights: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path
) -> None:
    path, state = weights
    model = load_semantic_encoder(path, TINY)
    g, v = state["quantizer.in_project.weight_g"], state["quantizer.in_project.weight_v"]
    expected = torch.stack(
        [g[o, 0, 0] * v[o] / math.sqrt(float((v[o].double() ** 2).sum())) for o in range(8)]
    )
    torch.testing.assert_close(model.quantizer.in_project.weight, expected, rtol=1e-6, atol=1e-7)
    assert not any("weight_g" in name or "weight_v" in name for name, _ in model.named_parameters())

    renamed = {
        k.replace("in_project.weight_g", "in_project.parametrizations.weight.original0").replace(
            "in_project.weight_v", "in_project.parametrizations.weight.original1"
        ): v
        for k, v in state.items()
    }
    save_file(renamed, str(tmp_path / "model.safetensors"))
    other = load_semantic_encoder(tmp_path / "model.safetensors", TINY)
    assert torch.equal(other.quantizer.in_project.weight, model.quantizer.in_project.weight)


def test_missing_tensors_are_named(weights: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path) -> None:
    _, state = weights
    broken = {
        k: v
        for k, v in state.items()
        if k not in ("encoder.downsample.1.1.convnext.1.gamma", "encoder.project.bias")
    }
    save_file(broken, str(tmp_path / "model.safetensors"))
    with pytest.raises(BiCodecLoadError, match="2 missing tensor") as info:
        load_semantic_encoder(tmp_path / "model.safetensors", TINY)
    assert "encoder.downsample.1.1.convnext.1.gamma" in str(info.value)
    assert "encoder.project.bias" in str(info.value)


def test_semantic_ids_takes_one_utterance(weights: tuple[Path, dict[str, torch.Tensor]]) -> None:
    model = load_semantic_encoder(weights[0], TINY)
    features = torch.randn(2, 30, 32, generator=torch.Generator().manual_seed(2))
    with pytest.raises(ValueError, match=r"\[1, T, C\]"):
        model.semantic_ids(features)
    with torch.no_grad():
        batch = model(features)
    assert torch.equal(model.semantic_ids(features[1:]), batch[1])
    assert model.semantic_ids(features[:1]).shape == (30,)


def test_wave_to_ids_on_the_tiny_pack(weights: tuple[Path, dict[str, torch.Tensor]], tmp_path: Path) -> None:
    write_wav2vec2(tmp_path, seed=0, size="tiny")
    extractor = Wav2Vec2Features.from_dir(tmp_path / WAV2VEC2_DIR)
    model = load_semantic_encoder(weights[0], TINY)
    rng = np.random.default_rng(0)
    wave = np.sin(2 * np.pi * 180 * np.arange(32000) / 16000) * 0.3 + 0.05 * rng.standard_normal(32000)
    ids = model.semantic_ids(extractor(wave))
    assert ids.shape == ((32000 - 80) // 320,)
    assert ((ids >= 0) & (ids < 8192)).all()
    assert torch.equal(ids, model.semantic_ids(extractor(wave)))
    assert len(set(ids.tolist())) > 5
