from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from tests.services.vocoder.helpers import assert_equals_published_table
from voxserve.random_packs.tiny_bicodec import TINY_BICODEC_CONFIG
from voxserve.vocoder.codecs.base import CodecInputError, VoiceConditioning
from voxserve.vocoder.codecs.bicodec import (
    BiCodec,
    BiCodecConfig,
    BiCodecLoadError,
    build_meta_decoder,
    checkpoint_shapes,
    fsq_dequantize,
    receptive_field_tokens,
)

# sha256 of the published decode-path table (specs/bicodec-decode-keys.tsv): its "name<TAB>shape"
# rows, sorted, joined by newlines. Lets the check run on a clone without the specs beside it.
DECODE_KEYS_SHA256 = "fee86a259bcad19b04530ed47f75977752925d6ceab6b2191d3d1ae752e47e94"


def random_voice(seed: int) -> VoiceConditioning:
    gen = torch.Generator().manual_seed(seed)
    return VoiceConditioning(global_ids=tuple(torch.randint(0, 4096, (32,), generator=gen).tolist()))


def random_tokens(batch: int, length: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 8192, (batch, length), generator=torch.Generator().manual_seed(seed))


# --- configuration and checkpoint names -----------------------------------------------------------


def test_full_size_checkpoint_keys_and_shapes_equal_the_published_table() -> None:
    shapes = checkpoint_shapes(BiCodecConfig.full_size())
    assert len(shapes) == 319
    assert_equals_published_table(shapes, DECODE_KEYS_SHA256, "bicodec-decode-keys.tsv")


def test_meta_build_uses_no_memory() -> None:
    model = build_meta_decoder(BiCodecConfig.full_size())
    assert all(p.device.type == "meta" for p in model.parameters())


def test_receptive_field_from_architecture() -> None:
    # Full size: 19 token-rate k=7 convs in the prenet (3 + 3 + 13) give 57, the wave generator 10.
    assert receptive_field_tokens(build_meta_decoder(BiCodecConfig.full_size())) == 67
    # Tiny: 3 + 3 + 4 prenet convs give 30, the same wave generator 10.
    tiny = BiCodecConfig.from_dict(TINY_BICODEC_CONFIG)
    assert receptive_field_tokens(build_meta_decoder(tiny)) == 40


def test_config_from_yaml(tiny_bicodec_pack: Path) -> None:
    config = BiCodecConfig.from_yaml(tiny_bicodec_pack / "BiCodec" / "config.yaml")
    assert config == BiCodecConfig.from_dict(TINY_BICODEC_CONFIG)
    assert config.samples_per_token == 320
    assert config.sample_rate == 16000
    assert config.speaker_encoder.fsq_levels == (4, 4, 4, 4, 4, 4)
    assert config.decoder.kernel_sizes == (16, 11, 8, 4)


def test_full_size_config_values() -> None:
    config = BiCodecConfig.full_size()
    assert config.quantizer.codebook_size == 8192
    assert config.prenet.vocos_num_layers == 12
    assert config.decoder.channels == 1536
    assert config.speaker_encoder.global_vocab_size == 4096
    assert config.samples_per_token == 320


def test_config_rejects_inconsistent_sizes(tmp_path: Path) -> None:
    raw = yaml.safe_load(yaml.safe_dump(TINY_BICODEC_CONFIG))
    raw["audio_tokenizer"]["prenet"]["condition_dim"] = 32
    with pytest.raises(BiCodecLoadError, match="condition_dim"):
        BiCodecConfig.from_dict(raw)

    del raw["audio_tokenizer"]["decoder"]["rates"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(BiCodecLoadError, match=r"decoder\.rates"):
        BiCodecConfig.from_yaml(path)


# --- global tokens -> speaker vector --------------------------------------------------------------


def test_fsq_digit_mapping_by_hand() -> None:
    # 2361 = 1 + 2*4 + 3*16 + 0*64 + 1*256 + 2*1024: digits (1, 2, 3, 0, 1, 2), each (d - 2) / 2.
    codes = fsq_dequantize(torch.tensor([2361, 0, 4095]), (4, 4, 4, 4, 4, 4))
    assert codes[0].tolist() == [-0.5, 0.0, 0.5, -1.0, -0.5, 0.0]
    assert codes[1].tolist() == [-1.0] * 6
    assert codes[2].tolist() == [0.5] * 6


def test_speaker_vector_flattens_channel_major(tiny_bicodec64: BiCodec) -> None:
    voice = random_voice(3)
    speaker = tiny_bicodec64.model.speaker_encoder
    codes = fsq_dequantize(torch.tensor(voice.global_ids), (4, 4, 4, 4, 4, 4))
    z = codes @ speaker.quantizer.project_out.weight.T + speaker.quantizer.project_out.bias  # [32, 16]
    weight = speaker.project.weight.view(-1, 16, 32)  # [D, channel, token]
    expected = torch.einsum("dct,tc->d", weight, z) + speaker.project.bias
    torch.testing.assert_close(tiny_bicodec64.condition(voice), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("ids", "limit"),
    [
        (tuple(range(31)), "32"),
        (tuple(range(33)), "32"),
        ((*range(31), 4096), "4096"),
        ((-1, *range(31)), "4096"),
        ((*range(31), 1.0), "4096"),
    ],
)
def test_invalid_global_ids_are_rejected(tiny_bicodec: BiCodec, ids: tuple, limit: str) -> None:
    with pytest.raises(CodecInputError, match="global_ids") as info:
        tiny_bicodec.condition(VoiceConditioning(global_ids=ids))
    assert limit in str(info.value)


# --- decoding -------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 7, 50])
def test_decode_gives_320_samples_per_token(tiny_bicodec: BiCodec, length: int) -> None:
    conditioning = tiny_bicodec.condition(random_voice(0)).unsqueeze(0)
    audio = tiny_bicodec.decode(random_tokens(1, length, 1), conditioning)
    assert audio.shape == (1, length * 320)
    assert audio.dtype == torch.float32
    assert tiny_bicodec.samples_per_token == 320
    assert tiny_bicodec.sample_rate == 16000
    assert tiny_bicodec.token_vocab_size == 8192
    assert tiny_bicodec.name == "bicodec"


def test_empty_window_decodes_to_no_samples(tiny_bicodec: BiCodec) -> None:
    conditioning = tiny_bicodec.condition(random_voice(0)).unsqueeze(0)
    audio = tiny_bicodec.decode(torch.zeros(1, 0, dtype=torch.int64), conditioning)
    assert audio.shape == (1, 0)


def test_output_is_audible_and_not_saturated(tiny_bicodec: BiCodec) -> None:
    conditioning = tiny_bicodec.condition(random_voice(0)).unsqueeze(0)
    audio = tiny_bicodec.decode(random_tokens(1, 100, 2), conditioning)
    assert 0.05 < float(audio.std()) < 0.5
    assert float((audio.abs() > 0.99).float().mean()) < 0.01


def test_batched_rows_equal_unbatched(tiny_bicodec: BiCodec) -> None:
    tokens = random_tokens(3, 30, 4)
    conditioning = torch.stack([tiny_bicodec.condition(random_voice(seed)) for seed in range(3)])
    batched = tiny_bicodec.decode(tokens, conditioning)
    for row in range(3):
        alone = tiny_bicodec.decode(tokens[row : row + 1], conditioning[row : row + 1])
        assert float((batched[row] - alone[0]).abs().max()) <= 1e-4


def test_decode_is_deterministic(tiny_bicodec_pack: Path, tiny_bicodec: BiCodec) -> None:
    tokens = random_tokens(2, 20, 5)
    conditioning = tiny_bicodec.condition(random_voice(5)).expand(2, -1)
    first = tiny_bicodec.decode(tokens, conditioning)
    assert torch.equal(first, tiny_bicodec.decode(tokens, conditioning))
    reloaded = BiCodec.from_pack(tiny_bicodec_pack)
    assert torch.equal(first, reloaded.decode(tokens, reloaded.condition(random_voice(5)).expand(2, -1)))


@pytest.mark.parametrize(
    "tokens",
    [
        torch.tensor([[0, 8192]]),
        torch.tensor([[-1, 3]]),
        torch.tensor([[1, 2]], dtype=torch.int32),
        torch.tensor([1, 2]),
    ],
)
def test_invalid_tokens_are_rejected(tiny_bicodec: BiCodec, tokens: torch.Tensor) -> None:
    conditioning = tiny_bicodec.condition(random_voice(0)).unsqueeze(0)
    with pytest.raises(CodecInputError, match="tokens"):
        tiny_bicodec.decode(tokens, conditioning)


def test_conditioning_must_match_batch(tiny_bicodec: BiCodec) -> None:
    conditioning = tiny_bicodec.condition(random_voice(0)).unsqueeze(0)
    with pytest.raises(CodecInputError, match="conditioning"):
        tiny_bicodec.decode(random_tokens(2, 5, 0), conditioning)


# --- loading --------------------------------------------------------------------------------------


def copy_pack_with_tensors(src: Path, dst: Path, tensors: dict[str, torch.Tensor]) -> Path:
    shutil.copytree(src, dst)
    save_file(tensors, str(dst / "BiCodec" / "model.safetensors"))
    return dst


def test_weight_norm_is_folded_at_load(tiny_bicodec_pack: Path, tiny_bicodec64: BiCodec) -> None:
    stored = load_file(str(tiny_bicodec_pack / "BiCodec" / "model.safetensors"))
    g, v = stored["decoder.model.1.block.1.weight_g"], stored["decoder.model.1.block.1.weight_v"]
    expected = g.double() * v.double() / v.double().flatten(1).norm(dim=1).view(-1, 1, 1)
    weight = tiny_bicodec64.model.decoder.model[1].block[1].weight
    torch.testing.assert_close(weight, expected, rtol=0, atol=1e-12)


def test_both_weight_norm_namings_decode_identically(tiny_bicodec_pack: Path, tmp_path: Path) -> None:
    stored = load_file(str(tiny_bicodec_pack / "BiCodec" / "model.safetensors"))
    renamed = {
        key.replace(".weight_g", ".parametrizations.weight.original0").replace(
            ".weight_v", ".parametrizations.weight.original1"
        ): value
        for key, value in stored.items()
    }
    assert not any(key.endswith(("weight_g", "weight_v")) for key in renamed)
    new_pack = copy_pack_with_tensors(tiny_bicodec_pack, tmp_path / "new-naming", renamed)

    old, new = BiCodec.from_pack(tiny_bicodec_pack), BiCodec.from_pack(new_pack)
    tokens = random_tokens(1, 20, 6)
    voice = random_voice(6)
    assert torch.equal(
        old.decode(tokens, old.condition(voice).unsqueeze(0)),
        new.decode(tokens, new.condition(voice).unsqueeze(0)),
    )


def test_encode_only_tensors_are_ignored(tiny_bicodec_pack: Path, tiny_bicodec: BiCodec) -> None:
    with safe_open(str(tiny_bicodec_pack / "BiCodec" / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert "quantizer.cluster_size" in keys
    assert any(key.startswith("encoder.") for key in keys)
    assert not any(name.startswith("encoder.") for name, _ in tiny_bicodec.model.named_parameters())


def test_missing_tensor_is_named(tiny_bicodec_pack: Path, tmp_path: Path) -> None:
    stored = load_file(str(tiny_bicodec_pack / "BiCodec" / "model.safetensors"))
    del stored["prenet.linear.bias"]
    del stored["decoder.model.6.weight_g"]
    pack = copy_pack_with_tensors(tiny_bicodec_pack, tmp_path / "missing", stored)
    with pytest.raises(BiCodecLoadError, match="missing") as info:
        BiCodec.from_pack(pack)
    assert "prenet.linear.bias" in str(info.value)
    assert "decoder.model.6.weight_g" in str(info.value)


def test_shape_mismatch_is_named(tiny_bicodec_pack: Path, tmp_path: Path) -> None:
    stored = load_file(str(tiny_bicodec_pack / "BiCodec" / "model.safetensors"))
    stored["quantizer.codebook.weight"] = torch.zeros(4096, 8)
    pack = copy_pack_with_tensors(tiny_bicodec_pack, tmp_path / "mismatch", stored)
    with pytest.raises(BiCodecLoadError, match=r"quantizer\.codebook\.weight.*\(8192, 8\).*\(4096, 8\)"):
        BiCodec.from_pack(pack)


def test_pack_hop_length_must_match_the_decoder(tiny_bicodec_pack: Path, tmp_path: Path) -> None:
    pack = tmp_path / "bad-hop"
    shutil.copytree(tiny_bicodec_pack, pack)
    top = yaml.safe_load((pack / "config.yaml").read_text(encoding="utf-8"))
    top["latent_hop_length"] = 640
    (pack / "config.yaml").write_text(yaml.safe_dump(top), encoding="utf-8")
    with pytest.raises(BiCodecLoadError, match="latent_hop_length"):
        BiCodec.from_pack(pack)


def test_conditioning_dimension(tiny_bicodec: BiCodec) -> None:
    d = tiny_bicodec.condition(random_voice(1))
    assert d.shape == (64,)
    assert d.dtype == torch.float32
    assert math.isfinite(float(d.abs().sum()))
