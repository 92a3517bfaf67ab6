"""Spark enrolment through `BiCodec.encode_voice` on tiny packs: both paths, lazy loading, what a
pack without encoders says, and that such a pack still decodes."""

from __future__ import annotations

import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from tests.services.vocoder.key_tables import assert_matches_key_table
from voxserve.random_packs.tiny_bicodec import TINY_BICODEC_CONFIG, write_tiny_bicodec
from voxserve.random_packs.tiny_wav2vec2 import write_wav2vec2
from voxserve.vocoder.codecs.base import CodecInputError, EncoderUnavailable, VoiceConditioning
from voxserve.vocoder.codecs.bicodec import BiCodec, BiCodecConfig, checkpoint_shapes
from voxserve.vocoder.codecs.bicodec.reference_audio import normalize_volume, reference_clip
from voxserve.vocoder.codecs.bicodec.semantic_encoder import semantic_checkpoint_shapes
from voxserve.vocoder.codecs.bicodec.speaker_encoder import speaker_checkpoint_shapes

# sha256 of the enrolment rows of specs/bicodec-encode-keys.tsv (every row but the unused ones
# below) as sorted "name<TAB>shape" rows.
ENROLMENT_KEYS_SHA256 = "0606a8f4a4b47d2b86ff33bd1b067b891ccb77cf8200dfe34ca4e685a832cc19"
UNUSED_PREFIXES = (
    "postnet.",  # training only
    "speaker_encoder.speaker_encoder.pool.",  # the x-vector branch: not used for tokens
    "speaker_encoder.speaker_encoder.bn.",
    "speaker_encoder.speaker_encoder.linear.",
    "quantizer.cluster_size",  # training statistics
)
RATE = 16000


def is_enrolment_row(name: str) -> bool:
    return not name.startswith(UNUSED_PREFIXES)


def test_full_size_enrolment_modules_cover_every_used_row_of_the_published_table() -> None:
    config = BiCodecConfig.full_size()
    shapes = {**semantic_checkpoint_shapes(config), **speaker_checkpoint_shapes(config)}
    assert len(shapes) == 400
    assert_matches_key_table(shapes, ENROLMENT_KEYS_SHA256, "bicodec-encode-keys.tsv", is_enrolment_row)


def voiced(seconds: float, f0: float, seed: int) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    noise = np.random.default_rng(seed).standard_normal(t.size) * 0.03
    wave = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.15 * np.sin(2 * np.pi * 2.7 * f0 * t) + noise
    return (wave * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


@pytest.fixture(scope="module")
def enrol_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BiCodec with every encoder part, and the wav2vec2 beside it (as the spark writer)."""
    root = tmp_path_factory.mktemp("enrol-pack")
    write_tiny_bicodec(root, seed=5)
    write_wav2vec2(root, seed=5, size="tiny")
    return root


@pytest.fixture(scope="module")
def codec(enrol_pack: Path) -> BiCodec:
    return BiCodec.from_pack(enrol_pack)


def test_encoders_load_on_first_use(enrol_pack: Path) -> None:
    fresh = BiCodec.from_pack(enrol_pack)
    assert fresh.voice_encoder is not None
    assert fresh.voice_encoder.missing == []
    assert not fresh.voice_encoder.loaded
    fresh.encode_voice(voiced(1.0, 150, 0), RATE, reference_tokens=False)
    assert fresh.voice_encoder.loaded


def test_enrolment_gives_32_global_ids_and_the_semantic_ids_of_the_whole_reference(codec: BiCodec) -> None:
    audio = voiced(7.5, 140, 1)
    encoded = codec.encode_voice(audio, RATE, reference_tokens=True)
    assert len(encoded.global_ids) == 32 and all(0 <= g < 4096 for g in encoded.global_ids)
    # No length cap: T = floor((L - 80) / 320) for the whole 7.5 s.
    assert len(encoded.reference_semantic_ids) == (len(audio) - 80) // 320 == 374
    assert all(0 <= s < 8192 for s in encoded.reference_semantic_ids)
    assert len(set(encoded.reference_semantic_ids)) > 5
    plain = codec.encode_voice(audio, RATE, reference_tokens=False)
    assert plain.global_ids == encoded.global_ids and plain.reference_semantic_ids == ()


def test_enrolment_is_deterministic_and_depends_on_the_voice(codec: BiCodec) -> None:
    first = codec.encode_voice(voiced(3.0, 140, 2), RATE, True)
    assert codec.encode_voice(voiced(3.0, 140, 2), RATE, True) == first
    other = codec.encode_voice(voiced(3.0, 230, 3), RATE, True)
    assert sum(a != b for a, b in zip(first.global_ids, other.global_ids, strict=True)) >= 16
    assert first.reference_semantic_ids != other.reference_semantic_ids


def test_global_ids_read_only_the_first_six_seconds(codec: BiCodec) -> None:
    # The last 2 s differ only in order, so both have the same magnitudes and volume gain.
    head, tail = voiced(6.0, 150, 4), voiced(2.0, 260, 8)
    a, b = np.concatenate([head, tail]), np.concatenate([head, tail[::-1]])
    ea, eb = codec.encode_voice(a, RATE, True), codec.encode_voice(b, RATE, True)
    assert ea.global_ids == eb.global_ids
    assert ea.reference_semantic_ids != eb.reference_semantic_ids


def test_a_short_reference_is_normalised_then_tiled_to_six_seconds(codec: BiCodec) -> None:
    audio = voiced(1.3, 170, 5)
    assert codec.voice_encoder is not None
    speaker = codec.voice_encoder._speaker_tokenizer()
    clip = reference_clip(normalize_volume(audio.astype(np.float64)), 96000)
    with torch.inference_mode():
        expected = speaker.global_ids(torch.from_numpy(clip).float()[None]).tolist()
    assert codec.encode_voice(audio, RATE, False).global_ids == tuple(expected)


def test_concurrent_first_encodes_load_once_and_agree(enrol_pack: Path) -> None:
    fresh = BiCodec.from_pack(enrol_pack)
    audio = voiced(2.0, 120, 6)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: fresh.encode_voice(audio, RATE, True), range(3)))
    assert results[0] == results[1] == results[2]
    assert results[0] == fresh.encode_voice(audio, RATE, True)


@pytest.mark.parametrize(
    ("audio", "rate", "match"),
    [
        (np.zeros(16000, np.float32), 22050, "sample_rate is 22050"),
        (np.zeros((2, 16000), np.float32), RATE, "audio must be a 1-D float array"),
        (np.zeros(16000, np.int16), RATE, "audio must be a 1-D float array"),
        (np.zeros(399, np.float32), RATE, "audio holds 399 samples; it must hold at least 400"),
        (np.array([0.1] * 500 + [math.nan], np.float32), RATE, "audio holds non-finite samples"),
    ],
)
def test_bad_audio_is_refused_naming_the_field(
    codec: BiCodec, audio: np.ndarray, rate: int, match: str
) -> None:
    with pytest.raises(CodecInputError, match=match):
        codec.encode_voice(audio, rate, True)


def test_a_codec_loaded_from_files_has_no_encoder(enrol_pack: Path) -> None:
    config = BiCodecConfig.from_yaml(enrol_pack / "BiCodec" / "config.yaml")
    bare = BiCodec.from_files(config, enrol_pack / "BiCodec" / "model.safetensors")
    with pytest.raises(EncoderUnavailable, match="loaded from files"):
        bare.encode_voice(voiced(1.0, 150, 0), RATE, False)


# --- packs without encoders ---------------------------------------------------------------------


def old_layout_pack(src: Path, dst: Path) -> Path:
    """The pack as the writer made it before enrolment: decode tensors plus a few encode-side
    dummies, no `encoder` config section, no wav2vec2."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("wav2vec2-*"))
    config = BiCodecConfig.from_dict(TINY_BICODEC_CONFIG)
    stored = load_file(str(src / "BiCodec" / "model.safetensors"))
    kept = {key: stored[key] for key in checkpoint_shapes(config)}
    kept["quantizer.cluster_size"] = torch.ones(8192)
    kept["encoder.dummy.weight"] = torch.ones(4, 4)
    save_file(kept, str(dst / "BiCodec" / "model.safetensors"))
    raw = yaml.safe_load((dst / "BiCodec" / "config.yaml").read_text(encoding="utf-8"))
    del raw["audio_tokenizer"]["encoder"]
    (dst / "BiCodec" / "config.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return dst


def test_an_old_pack_decodes_as_before_and_names_what_enrolment_lacks(
    enrol_pack: Path, codec: BiCodec, tmp_path: Path
) -> None:
    old = BiCodec.from_pack(old_layout_pack(enrol_pack, tmp_path / "old"))
    voice = VoiceConditioning(global_ids=tuple(range(0, 4096, 128)))
    tokens = torch.randint(0, 8192, (1, 30), generator=torch.Generator().manual_seed(0))
    assert torch.equal(
        old.decode(tokens, old.condition(voice).unsqueeze(0)),
        codec.decode(tokens, codec.condition(voice).unsqueeze(0)),
    )
    with pytest.raises(EncoderUnavailable) as info:
        old.encode_voice(voiced(1.0, 150, 0), RATE, reference_tokens=True)
    message = str(info.value)
    for part in (
        "wav2vec2-large-xlsr-53/config.json",
        "wav2vec2-large-xlsr-53/preprocessor_config.json",
        "wav2vec2-large-xlsr-53/pytorch_model.bin",
        "BiCodec/config.yaml: the audio_tokenizer.encoder section",
        "BiCodec/model.safetensors: 230 speaker-encoder tensor(s) (speaker_encoder.",
    ):
        assert part in message
    with pytest.raises(EncoderUnavailable, match="wav2vec2"):
        old.encode_voice(voiced(1.0, 150, 0), RATE, reference_tokens=False)


@pytest.mark.parametrize("reference_tokens", [True, False])
def test_a_pack_without_wav2vec2_cannot_enrol(
    enrol_pack: Path, tmp_path: Path, reference_tokens: bool
) -> None:
    # Upstream enrols with both paths: without wav2vec2 not even the global ids are given.
    pack = tmp_path / "no-wav2vec2"
    shutil.copytree(enrol_pack, pack, ignore=shutil.ignore_patterns("wav2vec2-*"))
    partial = BiCodec.from_pack(pack)
    with pytest.raises(EncoderUnavailable) as info:
        partial.encode_voice(voiced(2.0, 150, 7), RATE, reference_tokens)
    lacks = str(info.value).split("lacks: ")[1].split("; ")
    assert lacks == [
        f"wav2vec2-large-xlsr-53/{name}"
        for name in ("config.json", "preprocessor_config.json", "pytorch_model.bin")
    ]


def test_a_misshapen_encoder_tensor_is_named(enrol_pack: Path, tmp_path: Path) -> None:
    pack = tmp_path / "misshapen"
    shutil.copytree(enrol_pack, pack)
    stored = load_file(str(pack / "BiCodec" / "model.safetensors"))
    stored["encoder.project.weight"] = torch.zeros(3, 3)
    save_file(stored, str(pack / "BiCodec" / "model.safetensors"))
    with pytest.raises(
        EncoderUnavailable, match=r"encoder\.project\.weight: expected \(64, 32\), found \(3, 3\)"
    ):
        BiCodec.from_pack(pack).encode_voice(voiced(1.0, 150, 0), RATE, True)


def test_an_unreadable_wav2vec2_config_is_encoder_unavailable(enrol_pack: Path, tmp_path: Path) -> None:
    pack = tmp_path / "broken"
    shutil.copytree(enrol_pack, pack)
    (pack / "wav2vec2-large-xlsr-53" / "config.json").write_text("{not json", encoding="utf-8")
    broken = BiCodec.from_pack(pack)
    assert broken.encode_voice(voiced(1.0, 150, 0), RATE, False).global_ids
    with pytest.raises(EncoderUnavailable, match=r"wav2vec2: cannot read .*config\.json"):
        broken.encode_voice(voiced(1.0, 150, 0), RATE, True)
