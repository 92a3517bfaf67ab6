"""CAMPPlus, the S3Gen x-vector: checkpoint names, the Kaldi front end, pooling, loading."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.services.vocoder.key_tables import file_key_rows, shapes_sha256
from voxserve.random_packs.tiny_campplus import calibration_voices, campplus_tensors
from voxserve.vocoder.codecs.base import CodecInputError
from voxserve.vocoder.codecs.checkpoint import CheckpointError
from voxserve.vocoder.codecs.s3gen.campplus import (
    CampPlus,
    CAMPPlusNetwork,
    campplus_shapes,
    load_campplus,
    segment_means,
    statistics_pooling,
)
from voxserve.vocoder.codecs.s3gen.campplus_fbank import (
    MIN_CLIP_SAMPLES,
    campplus_fbank,
    resample_24k_to_16k,
)

TABLE = "chatterbox-encode-keys.tsv"
# sha256 of the `speaker_encoder.*` rows of specs/chatterbox-encode-keys.tsv (file s3gen.safetensors)
# as sorted "name<TAB>shape" rows, shapes as Python tuples.
SPEAKER_KEYS_SHA256 = "fe842422ca41e97cbada0364dc1b769ec5af806f9355221d9642f497640255b3"


def published_speaker_rows() -> dict[str, tuple[tuple[int, ...], str]] | None:
    return file_key_rows(TABLE, "s3gen.safetensors", "speaker_encoder.")


def test_names_and_shapes_equal_the_published_table() -> None:
    shapes = campplus_shapes()
    assert len(shapes) == 937
    assert shapes_sha256(shapes) == SPEAKER_KEYS_SHA256
    published = published_speaker_rows()
    if published is not None:
        assert shapes == {name: shape for name, (shape, _) in published.items()}


def test_random_tensors_cover_the_table_with_its_dtypes(tensors: dict[str, torch.Tensor]) -> None:
    assert {k: tuple(v.shape) for k, v in tensors.items()} == campplus_shapes()
    counters = {k for k in tensors if k.endswith("num_batches_tracked")}
    assert all(tensors[k].dtype == torch.int64 and tensors[k].shape == () for k in counters)
    assert all(v.dtype == torch.float32 for k, v in tensors.items() if k not in counters)
    assert "speaker_encoder.xvector.dense.nonlinear.batchnorm.weight" not in tensors
    published = published_speaker_rows()
    if published is not None:
        assert {k: str(v.dtype).removeprefix("torch.") for k, v in tensors.items()} == {
            name: dtype for name, (_, dtype) in published.items()
        }


# --- front end ----------------------------------------------------------------------------------


def kaldi_fbank(wave: np.ndarray) -> np.ndarray:
    """The recipe of specs/chatterbox-enrolment.md 3.2, in float64: 400-sample frames every 160
    (snip edges), DC removal, pre-emphasis 0.97, Povey window, 512-point power spectrum, 80 Kaldi
    mel bins from 20 Hz to 8 kHz with the Nyquist bin unweighted, log with a float epsilon floor."""
    frame, shift, n_fft, n_mels, sr = 400, 160, 512, 80, 16000
    frames = np.stack([wave[i * shift : i * shift + frame] for i in range(1 + (len(wave) - frame) // shift)])
    frames = frames.astype(np.float64) - frames.mean(axis=1, keepdims=True)
    frames = frames - 0.97 * np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / (frame - 1))) ** 0.85
    power = np.abs(np.fft.rfft(frames * window, n=n_fft, axis=1)) ** 2

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    edges = np.linspace(mel(20.0), mel(sr / 2), n_mels + 2)
    bin_mel = mel(np.arange(n_fft // 2 + 1) * sr / n_fft)
    bank = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        left, centre, right = edges[m : m + 3]
        bank[m] = np.maximum(
            0.0, np.minimum((bin_mel - left) / (centre - left), (right - bin_mel) / (right - centre))
        )
    bank[:, -1] = 0.0
    return np.log(np.maximum(power @ bank.T, np.finfo(np.float32).eps))


def test_fbank_follows_the_kaldi_recipe_with_mean_normalisation() -> None:
    rng = np.random.default_rng(0)
    n = 5000  # 1 + (5000 - 400) // 160 = 29 frames, 120 samples left over
    t = np.arange(n) / 16000
    wave = (
        0.05 * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 3100 * t)
    )
    wave = wave.astype(np.float32)
    feats = campplus_fbank(torch.from_numpy(wave)[None])
    assert feats.shape == (29, 80) and feats.dtype == torch.float32
    expected = kaldi_fbank(wave)
    np.testing.assert_allclose(feats.numpy(), expected - expected.mean(axis=0), rtol=0, atol=5e-4)
    np.testing.assert_allclose(feats.mean(dim=0).numpy(), 0.0, atol=1e-5)


def test_resampling_to_16k_keeps_a_tone_and_gives_ceil_two_thirds_samples() -> None:
    for n in (1079, 24001, 240000):
        assert resample_24k_to_16k(np.zeros(n, dtype=np.float32)).shape == (1, math.ceil(2 * n / 3))
    t = np.arange(24000) / 24000
    r16 = resample_24k_to_16k((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))[0].numpy()
    middle = r16[2000:14000]
    expected = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(2000, 14000) / 16000)
    np.testing.assert_allclose(middle, expected, atol=2e-3)


@pytest.mark.parametrize(
    "clip",
    [np.zeros(MIN_CLIP_SAMPLES - 1, np.float32), np.zeros(0, np.float32), np.zeros((2, 4000), np.float32)],
    ids=["too-short", "empty", "stereo"],
)
def test_unusable_audio_is_rejected_naming_audio(encoder: CampPlus, clip: np.ndarray) -> None:
    with pytest.raises(CodecInputError, match="audio"):
        encoder.xvector(clip)


def test_non_finite_audio_is_rejected(encoder: CampPlus) -> None:
    clip = np.zeros(24000, np.float32)
    clip[100] = np.nan
    with pytest.raises(CodecInputError, match="audio"):
        encoder.xvector(clip)


# --- network pieces -----------------------------------------------------------------------------


@pytest.mark.parametrize("frames", [37, 100, 250, 499])
def test_segment_means_average_each_100_frame_run_including_the_partial_last(frames: int) -> None:
    x = torch.randn(2, 3, frames, generator=torch.Generator().manual_seed(frames), dtype=torch.float64)
    expected = torch.empty_like(x)
    for start in range(0, frames, 100):
        stop = min(start + 100, frames)
        expected[..., start:stop] = x[..., start:stop].mean(dim=-1, keepdim=True)
    torch.testing.assert_close(segment_means(x), expected, rtol=1e-12, atol=1e-12)


def test_statistics_pooling_uses_the_unbiased_std() -> None:
    x = torch.randn(2, 5, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    stats = statistics_pooling(x).numpy()
    assert stats.shape == (2, 10)
    np.testing.assert_allclose(stats[:, :5], x.numpy().mean(axis=-1))
    np.testing.assert_allclose(stats[:, 5:], x.numpy().std(axis=-1, ddof=1))


def test_layer_widths_and_frame_rates_follow_the_spec() -> None:
    network = CAMPPlusNetwork().eval()
    seen: dict[str, tuple[int, ...]] = {}
    for name in ("tdnn", "block1", "transit1", "block2", "transit2", "block3", "transit3", "stats"):
        network.xvector.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape))
        )
    network.head.register_forward_hook(lambda _m, _i, out: seen.__setitem__("head", tuple(out.shape)))
    with torch.inference_mode():
        out = network(torch.randn(1, 203, 80))
    assert out.shape == (1, 192)
    assert seen == {
        "head": (1, 320, 203),
        "tdnn": (1, 128, 102),
        "block1": (1, 512, 102),
        "transit1": (1, 256, 102),
        "block2": (1, 1024, 102),
        "transit2": (1, 512, 102),
        "block3": (1, 1024, 102),
        "transit3": (1, 512, 102),
        "stats": (1, 1024),
    }


# --- loaded encoder -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tensors() -> dict[str, torch.Tensor]:
    return campplus_tensors(seed=0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, tensors: dict[str, torch.Tensor]) -> Path:
    path = tmp_path_factory.mktemp("campplus") / "s3gen.safetensors"
    # Other prefixes of s3gen.safetensors are ignored.
    save_file({**tensors, "flow.input_embedding.weight": torch.zeros(4, 2)}, str(path))
    return path


@pytest.fixture(scope="module")
def encoder(checkpoint: Path) -> CampPlus:
    return load_campplus(checkpoint)


@pytest.fixture(scope="module")
def voices() -> np.ndarray:
    return calibration_voices(3, 4.0, torch.Generator().manual_seed(99)).numpy()


def test_xvector_is_192_floats_deterministic_and_differs_between_voices(
    encoder: CampPlus, voices: np.ndarray
) -> None:
    assert not encoder.network.training
    vectors = [encoder.xvector(v) for v in voices]
    assert all(v.shape == (192,) and v.dtype == np.float32 and np.isfinite(v).all() for v in vectors)
    np.testing.assert_array_equal(encoder.xvector(voices[0]), vectors[0])
    unit = np.stack([v / np.linalg.norm(v) for v in vectors])
    cosines = unit @ unit.T
    assert cosines[np.triu_indices(3, 1)].max() < 0.9


def test_the_16k_entry_point_gives_the_same_vector(encoder: CampPlus, voices: np.ndarray) -> None:
    r16 = resample_24k_to_16k(voices[1])
    np.testing.assert_array_equal(encoder.xvector_16k(r16), encoder.xvector(voices[1]))


def test_the_shortest_clip_gives_a_finite_vector(encoder: CampPlus, voices: np.ndarray) -> None:
    assert np.isfinite(encoder.xvector(voices[0][:MIN_CLIP_SAMPLES])).all()


def test_the_final_batch_norm_uses_its_running_statistics(checkpoint: Path, voices: np.ndarray) -> None:
    encoder = load_campplus(checkpoint)
    norm = encoder.network.xvector.dense.nonlinear.batchnorm
    before = encoder.xvector(voices[2])
    delta = torch.linspace(-1, 1, 192)
    norm.running_mean += delta
    shift = (delta / torch.sqrt(norm.running_var + norm.eps)).numpy()
    np.testing.assert_allclose(encoder.xvector(voices[2]), before - shift, rtol=1e-5, atol=1e-5)


def test_counters_are_optional_but_missing_and_misshapen_tensors_are_named(
    tensors: dict[str, torch.Tensor], checkpoint: Path, tmp_path: Path, voices: np.ndarray
) -> None:
    tensors = {k: v for k, v in tensors.items() if not k.endswith("num_batches_tracked")}
    save_file(tensors, str(tmp_path / "no-counters.safetensors"))
    np.testing.assert_array_equal(
        load_campplus(tmp_path / "no-counters.safetensors").xvector(voices[0]),
        load_campplus(checkpoint).xvector(voices[0]),
    )

    del tensors["speaker_encoder.xvector.block2.tdnnd7.cam_layer.linear2.bias"]
    tensors["speaker_encoder.head.conv1.weight"] = torch.zeros(32, 1, 3, 2)
    save_file(tensors, str(tmp_path / "broken.safetensors"))
    with pytest.raises(CheckpointError) as info:
        load_campplus(tmp_path / "broken.safetensors")
    message = str(info.value)
    assert "speaker_encoder.xvector.block2.tdnnd7.cam_layer.linear2.bias" in message
    assert "speaker_encoder.head.conv1.weight: expected (32, 1, 3, 3), found (32, 1, 3, 2)" in message
