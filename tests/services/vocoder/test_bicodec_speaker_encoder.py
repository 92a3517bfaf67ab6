"""The BiCodec speaker path: mel front end, checkpoint names, FSQ ids and loading."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.services.vocoder.key_tables import assert_matches_key_table
from voxserve.random_packs.tiny_bicodec import TINY_BICODEC_CONFIG
from voxserve.vocoder.codecs.bicodec.config import BiCodecConfig, BiCodecLoadError, MelConfig
from voxserve.vocoder.codecs.bicodec.speaker_encoder import (
    MEL_BUFFERS,
    build_meta_speaker_tokenizer,
    fsq_ids,
    load_speaker_tokenizer,
    mel_transformer,
    speaker_checkpoint_shapes,
)

# sha256 of the speaker-path rows of specs/bicodec-encode-keys.tsv (speaker_encoder.* without the
# x-vector branch, and the two mel buffers) as sorted "name<TAB>shape" rows.
SPEAKER_KEYS_SHA256 = "4bfb40dfd36aa396da7a19f8029e9d7b976bda234ad4a8ca379590f3f3ba935b"
XVECTOR = ("speaker_encoder.speaker_encoder.pool.", "speaker_encoder.speaker_encoder.bn.")
XVECTOR_LINEAR = "speaker_encoder.speaker_encoder.linear."
TINY = BiCodecConfig.from_dict(TINY_BICODEC_CONFIG)


def is_speaker_row(name: str) -> bool:
    if name.startswith("mel_transformer."):
        return True
    return name.startswith("speaker_encoder.") and not name.startswith((*XVECTOR, XVECTOR_LINEAR))


def test_full_size_names_and_shapes_equal_the_published_table() -> None:
    shapes = speaker_checkpoint_shapes(BiCodecConfig.full_size())
    assert len(shapes) == 232
    assert_matches_key_table(shapes, SPEAKER_KEYS_SHA256, "bicodec-encode-keys.tsv", is_speaker_row)


def test_batch_norm_counters_are_int64_and_the_rest_float32() -> None:
    state = build_meta_speaker_tokenizer(BiCodecConfig.full_size()).state_dict()
    counters = {k for k in state if k.endswith("num_batches_tracked")}
    assert len(counters) == 1 + 3 * 9  # layer1, then per SE-Res2 block: 2 CRBs and 7 Res2 norms
    assert all(state[k].dtype == torch.int64 and state[k].shape == () for k in counters)
    assert all(v.dtype == torch.float32 for k, v in state.items() if k not in counters)


def test_the_encoder_builds_on_the_meta_device() -> None:
    tokenizer = build_meta_speaker_tokenizer(BiCodecConfig.full_size())
    assert all(p.device.type == "meta" for p in tokenizer.speaker_encoder.parameters())


# --- mel front end ------------------------------------------------------------------------------


def slaney_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """[n_fft // 2 + 1, n_mels] triangular filters on the Slaney mel scale, area-normalised."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0

    def hz_to_mel(f: float) -> float:
        return f / f_sp if f < min_log_hz else min_log_mel + math.log(f / min_log_hz) / logstep

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return np.where(m < min_log_mel, f_sp * m, min_log_hz * np.exp(logstep * (m - min_log_mel)))

    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    weights = np.zeros((n_mels, len(fft_freqs)))
    for i in range(n_mels):
        lower = (fft_freqs - mel_f[i]) / (mel_f[i + 1] - mel_f[i])
        upper = (mel_f[i + 2] - fft_freqs) / (mel_f[i + 2] - mel_f[i + 1])
        weights[i] = np.maximum(0, np.minimum(lower, upper)) * 2.0 / (mel_f[i + 2] - mel_f[i])
    return weights.T


def numpy_mel(wave: np.ndarray, fb: np.ndarray) -> np.ndarray:
    """|STFT| (centred reflect padding, periodic Hann(640) centred in 1024, hop 320) through `fb`."""
    n_fft, win, hop = 1024, 640, 320
    window = np.zeros(n_fft)
    window[(n_fft - win) // 2 : (n_fft + win) // 2] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    padded = np.pad(wave, n_fft // 2, mode="reflect")
    frames = np.stack([padded[i * hop : i * hop + n_fft] for i in range(1 + len(wave) // hop)])
    return fb.T @ np.abs(np.fft.rfft(frames * window, axis=1)).T


def test_mel_shape_and_filterbank_are_slaney_magnitudes() -> None:
    mel = mel_transformer(MelConfig())
    expected_fb = slaney_filterbank(16000, 1024, 128, 10.0, 8000.0)
    assert mel.mel_scale.fb.shape == (513, 128)
    np.testing.assert_allclose(mel.mel_scale.fb.numpy(), expected_fb, rtol=0, atol=1e-6)

    wave = np.random.default_rng(0).standard_normal(96000) * 0.1
    out = mel(torch.from_numpy(wave).float()[None])
    assert out.shape == (1, 128, 301)
    # Magnitude (not power), no log: it scales linearly with the input.
    np.testing.assert_allclose(out[0].double().numpy(), numpy_mel(wave, expected_fb), rtol=1e-3, atol=1e-5)


# --- FSQ ----------------------------------------------------------------------------------------


def spec_ids(z: np.ndarray) -> np.ndarray:
    """specs/spark-enrolment.md 2.4: digit_i = round(tanh(z_i + shift) * half - 0.5) + 2."""
    half = 3 * (1 + 1e-3) / 2
    shift = math.atanh(0.5 / half)
    digits = np.round(np.tanh(z.astype(np.float64) + shift) * half - 0.5) + 2  # numpy: half to even
    return (digits * 4 ** np.arange(6)).sum(-1).astype(np.int64)


def test_fsq_ids_follow_the_spec_formula() -> None:
    z = torch.randn(4, 32, 6, generator=torch.Generator().manual_seed(3)) * 1.5
    ids = fsq_ids(z, (4,) * 6)
    assert ids.dtype == torch.int32 and ids.shape == (4, 32)
    assert ids.min() >= 0 and ids.max() < 4096
    np.testing.assert_array_equal(ids.numpy(), spec_ids(z.numpy()))
    # Every digit value occurs: the bound reaches all four levels.
    digits = (ids.unsqueeze(-1) // 4 ** torch.arange(6)) % 4
    assert set(digits.flatten().tolist()) == {0, 1, 2, 3}


def test_fsq_digit_zero_is_least_significant() -> None:
    z = torch.full((1, 6), -10.0)
    z[0, 0] = 10.0  # digit 3 in dim 0, digit 0 elsewhere
    assert fsq_ids(z, (4,) * 6).tolist() == [3]
    z[0, 0], z[0, 5] = -10.0, 10.0
    assert fsq_ids(z, (4,) * 6).tolist() == [3 * 4**5]


def test_fsq_rounds_half_to_even() -> None:
    # Find a float32 z whose bounded value is exactly +0.5 in float32 (as upstream computes it):
    # half-to-even rounds it to 0 (digit 2); rounding half up would give digit 3.
    levels = torch.tensor([4], dtype=torch.int32)
    half_l = (levels - 1) * (1 + 1e-3) / 2
    shift = (torch.where(levels % 2 == 0, 0.5, 0.0) / half_l).atanh()
    start = np.float32(math.atanh(1.0 / float(half_l)) - float(shift))
    candidates = torch.from_numpy(start + np.arange(-2000, 2000, dtype=np.float32) * np.spacing(start))
    bounded = (candidates + shift).tanh() * half_l - 0.5
    exact = candidates[bounded == 0.5]
    assert len(exact) > 0
    z = exact[:1].reshape(1, 1).expand(1, 6).contiguous()
    assert fsq_ids(z, (4,) * 6).tolist() == [sum(2 * 4**i for i in range(6))]


# --- loading ------------------------------------------------------------------------------------


def reference_wave(seed: int, f0: float) -> torch.Tensor:
    t = torch.arange(96000) / 16000
    noise = torch.randn(96000, generator=torch.Generator().manual_seed(seed)) * 0.05
    return (0.3 * torch.sin(2 * math.pi * f0 * t) + 0.1 * torch.sin(2 * math.pi * 3.1 * f0 * t) + noise)[None]


@pytest.fixture(scope="module")
def tokenizer(tiny_bicodec_pack: Path) -> torch.nn.Module:
    return load_speaker_tokenizer(tiny_bicodec_pack / "BiCodec" / "model.safetensors", TINY)


def test_loaded_tokenizer_gives_32_ids_in_range_deterministically(tokenizer: torch.nn.Module) -> None:
    with torch.inference_mode():
        first = tokenizer.global_ids(reference_wave(0, 140.0))
        again = tokenizer.global_ids(reference_wave(0, 140.0))
        other = tokenizer.global_ids(reference_wave(1, 230.0))
    assert first.shape == (32,) and first.dtype == torch.int32
    assert 0 <= int(first.min()) and int(first.max()) < 4096
    assert torch.equal(first, again)
    assert int((first != other).sum()) >= 16
    assert not tokenizer.training


def test_mel_buffers_load_from_the_file_when_present(tiny_bicodec_pack: Path, tmp_path: Path) -> None:
    stored = load_file(str(tiny_bicodec_pack / "BiCodec" / "model.safetensors"))
    assert all(key in stored for key in MEL_BUFFERS)
    stored["mel_transformer.mel_scale.fb"] = stored["mel_transformer.mel_scale.fb"] * 2
    path = tmp_path / "model.safetensors"
    save_file(stored, str(path))
    loaded = load_speaker_tokenizer(path, TINY)
    torch.testing.assert_close(loaded.mel_transformer.mel_scale.fb, stored["mel_transformer.mel_scale.fb"])


def test_mel_buffers_are_recomputed_when_absent(
    tiny_bicodec_pack: Path, tokenizer: torch.nn.Module, tmp_path: Path
) -> None:
    stored = load_file(str(tiny_bicodec_pack / "BiCodec" / "model.safetensors"))
    for key in MEL_BUFFERS:
        del stored[key]
    path = tmp_path / "model.safetensors"
    save_file(stored, str(path))
    loaded = load_speaker_tokenizer(path, TINY)
    with torch.inference_mode():
        assert torch.equal(
            loaded.global_ids(reference_wave(2, 180.0)), tokenizer.global_ids(reference_wave(2, 180.0))
        )


def test_missing_and_misshapen_tensors_are_named(tiny_bicodec_pack: Path, tmp_path: Path) -> None:
    stored = load_file(str(tiny_bicodec_pack / "BiCodec" / "model.safetensors"))
    del stored["speaker_encoder.perceiver_sampler.latents"]
    stored["speaker_encoder.quantizer.project_in.weight"] = torch.zeros(6, 3)
    pack = tmp_path / "pack"
    shutil.copytree(tiny_bicodec_pack, pack)
    save_file(stored, str(pack / "BiCodec" / "model.safetensors"))
    with pytest.raises(BiCodecLoadError) as info:
        load_speaker_tokenizer(pack / "BiCodec" / "model.safetensors", TINY)
    assert "speaker_encoder.perceiver_sampler.latents" in str(info.value)
    assert "speaker_encoder.quantizer.project_in.weight: expected (6, 16), found (6, 3)" in str(info.value)
