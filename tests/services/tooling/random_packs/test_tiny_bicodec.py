from __future__ import annotations

from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file

from voxserve.families.pack import Pack
from voxserve.random_packs.tiny_bicodec import TINY_BICODEC_CONFIG, encode_side_shapes, write_tiny_bicodec
from voxserve.vocoder.codecs.base import VoiceConditioning
from voxserve.vocoder.codecs.bicodec import BiCodec, BiCodecConfig, checkpoint_shapes
from voxserve.vocoder.codecs.bicodec.speaker_encoder import mel_transformer

PACK_FILES = ("config.yaml", "BiCodec/config.yaml", "BiCodec/model.safetensors")


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    write_tiny_bicodec(tmp_path / "a", seed=7)
    write_tiny_bicodec(tmp_path / "b", seed=7)
    write_tiny_bicodec(tmp_path / "c", seed=8)
    for name in PACK_FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    weights = "BiCodec/model.safetensors"
    assert (tmp_path / "a" / weights).read_bytes() != (tmp_path / "c" / weights).read_bytes()


def test_pack_layout_and_top_level_config(tmp_path: Path) -> None:
    write_tiny_bicodec(tmp_path, seed=0)
    top = yaml.safe_load((tmp_path / "config.yaml").read_text(encoding="utf-8"))
    assert top == {
        "sample_rate": 16000,
        "highpass_cutoff_freq": 40,
        "latent_hop_length": 320,
        "ref_segment_duration": 6,
        "volume_normalize": True,
    }
    codec_config = yaml.safe_load((tmp_path / "BiCodec" / "config.yaml").read_text(encoding="utf-8"))
    assert codec_config == TINY_BICODEC_CONFIG
    tokenizer = codec_config["audio_tokenizer"]
    assert tokenizer["quantizer"]["codebook_size"] == 8192
    assert tokenizer["quantizer"]["codebook_dim"] == 8
    assert tokenizer["speaker_encoder"]["token_num"] == 32
    assert tokenizer["speaker_encoder"]["fsq_levels"] == [4, 4, 4, 4, 4, 4]
    assert tokenizer["decoder"]["rates"] == [8, 5, 4, 2]
    assert tokenizer["decoder"]["kernel_sizes"] == [16, 11, 8, 4]
    assert tokenizer["prenet"]["condition_dim"] == tokenizer["speaker_encoder"]["out_dim"]


def test_weights_use_the_published_names_and_old_weight_norm_form(tmp_path: Path) -> None:
    write_tiny_bicodec(tmp_path, seed=0)
    stored = load_file(str(tmp_path / "BiCodec" / "model.safetensors"))
    expected = checkpoint_shapes(BiCodecConfig.from_dict(TINY_BICODEC_CONFIG))
    assert {key: tuple(stored[key].shape) for key in expected} == expected
    assert "decoder.model.0.weight_g" in stored
    assert "decoder.model.0.weight" not in stored
    assert not any("parametrizations" in key for key in stored)
    extra = set(stored) - set(expected)
    assert "quantizer.cluster_size" in extra
    assert any(key.startswith("encoder.") for key in extra)
    # As upstream's state dict: BatchNorm batch counters are int64, every other tensor float32.
    assert all(
        value.dtype == (torch.int64 if key.endswith("num_batches_tracked") else torch.float32)
        for key, value in stored.items()
    )


def test_snake_alphas_are_positive(tmp_path: Path) -> None:
    write_tiny_bicodec(tmp_path, seed=0)
    stored = load_file(str(tmp_path / "BiCodec" / "model.safetensors"))
    alphas = [value for key, value in stored.items() if key.endswith(".alpha")]
    assert alphas
    assert all(float(a.min()) > 0.1 and float(a.max()) < 3.0 for a in alphas)


def test_pack_decodes_to_plausible_audio(tmp_path: Path) -> None:
    write_tiny_bicodec(tmp_path, seed=3)
    codec = BiCodec.from_pack(tmp_path)
    gen = torch.Generator().manual_seed(0)
    voice = VoiceConditioning(global_ids=tuple(torch.randint(0, 4096, (32,), generator=gen).tolist()))
    tokens = torch.randint(0, 8192, (1, 50), generator=gen)
    audio = codec.decode(tokens, codec.condition(voice).unsqueeze(0))
    assert audio.shape == (1, 50 * 320)
    assert 0.05 < float(audio.std()) < 0.5


def test_encode_side_tensors_have_the_module_shapes(tmp_path: Path) -> None:
    write_tiny_bicodec(tmp_path, seed=0)
    stored = load_file(str(tmp_path / "BiCodec" / "model.safetensors"))
    config = BiCodecConfig.from_dict(TINY_BICODEC_CONFIG)
    expected = {**checkpoint_shapes(config), **encode_side_shapes(config)}
    assert {key: tuple(value.shape) for key, value in stored.items()} == expected
    # The mel buffers are the deterministic ones, and the BatchNorm statistics measured, not defaults.
    mel = mel_transformer(config.mel)
    assert torch.equal(stored["mel_transformer.mel_scale.fb"], mel.mel_scale.fb)
    assert torch.equal(stored["mel_transformer.spectrogram.window"], mel.spectrogram.window)
    variances = [v for k, v in stored.items() if k.endswith("running_var")]
    assert len(variances) == 28 and not any(torch.allclose(v, torch.ones_like(v)) for v in variances)


def test_full_size_encode_side_is_the_published_layout() -> None:
    """Every enrolment row of specs/bicodec-encode-keys.tsv (the shared codebook is on the decode
    side) plus `quantizer.cluster_size`; no `postnet.*` and no x-vector branch."""
    shapes = encode_side_shapes(BiCodecConfig.full_size())
    assert len(shapes) == 524 - 112 - 11 - 1
    assert shapes["quantizer.cluster_size"] == (8192,)
    assert shapes["speaker_encoder.speaker_encoder.conv.weight"] == (1536, 1536, 1)
    assert shapes["quantizer.in_project.weight_v"] == (8, 1024, 1)
    assert not any(key.startswith(("postnet.", "speaker_encoder.speaker_encoder.pool.")) for key in shapes)


def test_the_spark_pack_can_enrol(tiny_pack: Pack) -> None:
    codec = BiCodec.from_pack(tiny_pack.root)
    assert codec.voice_encoder is not None and codec.voice_encoder.missing == []
