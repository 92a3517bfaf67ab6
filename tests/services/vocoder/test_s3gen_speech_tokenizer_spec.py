"""The S3 speech tokenizer v2 against the spec's arithmetic written out in float64: filterbank,
log-mel, one attention block, the whole encoder with FSQ, and the FSQ rounding."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torchaudio

from tests.services.vocoder.test_s3gen_speech_tokenizer import SR, voiced
from voxserve.random_packs.tiny_speech_tokenizer import speech_tokenizer_tensors
from voxserve.vocoder.codecs.s3gen.speech_tokenizer import (
    DEFAULT_ATTN_LN_EPS,
    PREFIX,
    SpeechTokenizer,
    fsq_ids,
    mel_filters,
)
from voxserve.vocoder.codecs.s3gen.speech_tokenizer_encoder import rope_tables


@pytest.fixture(scope="module")
def tiny() -> SpeechTokenizer:
    tokenizer = SpeechTokenizer(128, 2)
    tokenizer.load_state_dict(
        {k.removeprefix(PREFIX): v for k, v in speech_tokenizer_tensors(0, "tiny").items()}
    )
    return tokenizer.eval().requires_grad_(False)


# --- log-mel ------------------------------------------------------------------------------------


def slaney_filterbank(n_mels: int = 128) -> np.ndarray:
    """[n_mels, 201]: triangles between Slaney-mel-spaced edges over 0..8 kHz, area-normalised."""

    def hz_to_mel(f: float) -> float:
        return 3 * f / 200 if f < 1000 else 15 + 27 * math.log(f / 1000) / math.log(6.4)

    def mel_to_hz(m: float) -> float:
        return 200 * m / 3 if m < 15 else 1000 * 6.4 ** ((m - 15) / 27)

    edges = [mel_to_hz(m) for m in np.linspace(hz_to_mel(0.0), hz_to_mel(8000.0), n_mels + 2)]
    freqs = np.arange(201) * 8000 / 200
    bank = np.zeros((n_mels, 201))
    for i in range(n_mels):
        lo, mid, hi = edges[i : i + 3]
        tri = np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid))
        bank[i] = np.maximum(tri, 0) * 2 / (hi - lo)
    return bank


def spec_log_mel(wave: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Reflect-pad 200, periodic Hann(400) frames every 160, last frame dropped, |rfft|², mel,
    log10 (clamp 1e-10), floor at max - 8, (l + 4) / 4."""
    x = np.pad(wave.astype(np.float64), 200, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    frames = np.stack([x[i * 160 : i * 160 + 400] for i in range(len(wave) // 160)])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    log = np.log10(np.maximum(bank @ power.T, 1e-10))
    return (np.maximum(log, log.max() - 8) + 4) / 4


def test_filterbank_and_window_are_librosas() -> None:
    bank = mel_filters()
    assert bank.shape == (128, 201) and bank.dtype == torch.float32
    np.testing.assert_allclose(bank.double().numpy(), slaney_filterbank(), rtol=1e-6, atol=1e-12)
    reference = torchaudio.functional.melscale_fbanks(
        201, 0.0, 8000.0, 128, SR, norm="slaney", mel_scale="slaney"
    ).T
    torch.testing.assert_close(bank, reference, rtol=0, atol=3e-7)
    np.testing.assert_allclose(
        SpeechTokenizer(128, 0).window.numpy(),
        0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400),
        atol=5e-7,
    )


def test_log_mel_follows_the_spec(tiny: SpeechTokenizer) -> None:
    bank = slaney_filterbank()
    # A loud half and a near-silent half: the max - 8 floor holds the quiet frames.
    wave = np.concatenate([voiced(1.5, seed=3), 1e-7 * np.random.default_rng(4).standard_normal(8000)])
    wave = wave + 0.01 * np.random.default_rng(5).standard_normal(wave.size) * (np.arange(wave.size) < 24000)
    wave = wave.astype(np.float32)[:31337]
    mel = tiny.log_mel(torch.from_numpy(wave)).double().numpy()
    expected = spec_log_mel(wave, bank)
    assert mel.shape == expected.shape == (128, 195)
    np.testing.assert_allclose(mel, expected, atol=2e-5, rtol=0)
    floor = expected.max() - 2  # (max - 8 + 4) / 4 in the output's units
    assert (np.abs(expected[:, -20:] - floor) < 1e-12).mean() > 0.9


# --- encoder ------------------------------------------------------------------------------------


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    centred = x - x.mean(-1, keepdims=True)
    return centred / np.sqrt((centred**2).mean(-1, keepdims=True) + eps) * weight + bias


def rope(x: np.ndarray) -> np.ndarray:
    """x [T, 64]: pairs (j, j + 32) rotated by t · 10000^(-2j/64)."""
    out = np.empty_like(x)
    t = np.arange(x.shape[0])
    for j in range(32):
        angle = t * 10000.0 ** (-2 * j / 64)
        out[:, j] = x[:, j] * np.cos(angle) - x[:, j + 32] * np.sin(angle)
        out[:, j + 32] = x[:, j + 32] * np.cos(angle) + x[:, j] * np.sin(angle)
    return out


def reference_block(x: np.ndarray, p: dict[str, np.ndarray], eps: float) -> np.ndarray:
    """One residual block for an unpadded sequence x [T, C], written from the spec."""
    steps, channels = x.shape
    h = layer_norm(x, p["attn_ln.weight"], p["attn_ln.bias"], eps)
    q = h @ p["attn.query.weight"].T + p["attn.query.bias"]
    k = h @ p["attn.key.weight"].T
    v = h @ p["attn.value.weight"].T + p["attn.value.bias"]
    heads = np.zeros_like(x)
    for head in range(channels // 64):
        cols = slice(64 * head, 64 * head + 64)
        logits = (rope(q[:, cols]) * 64**-0.25) @ (rope(k[:, cols]) * 64**-0.25).T
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        heads[:, cols] = (weights / weights.sum(-1, keepdims=True)) @ v[:, cols]
    memory = v.copy()
    kernel = p["attn.fsmn_block.weight"][:, 0, :]
    for t in range(steps):
        for j in range(31):
            if 0 <= t + j - 15 < steps:
                memory[t] += kernel[:, j] * v[t + j - 15]
    x = x + heads @ p["attn.out.weight"].T + p["attn.out.bias"] + memory
    h = layer_norm(x, p["mlp_ln.weight"], p["mlp_ln.bias"], 1e-5)
    return x + gelu(h @ p["mlp.0.weight"].T + p["mlp.0.bias"]) @ p["mlp.2.weight"].T + p["mlp.2.bias"]


def conv_s2(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Conv1d k3, stride 2, zero padding 1: x [C_in, T] -> [C_out, ceil(T / 2)]."""
    padded = np.pad(x, ((0, 0), (1, 1)))
    steps = (x.shape[1] - 1) // 2 + 1
    return (
        np.stack([np.einsum("oik,ik->o", weight, padded[:, 2 * t : 2 * t + 3]) for t in range(steps)], 1)
        + (bias[:, None])
    )


def block_params(tokenizer: SpeechTokenizer, index: int) -> dict[str, np.ndarray]:
    prefix = f"encoder.blocks.{index}."
    return {
        k.removeprefix(prefix): v.double().numpy()
        for k, v in tokenizer.state_dict().items()
        if k.startswith(prefix)
    }


def test_attention_block_equals_the_spec_in_float64(tiny: SpeechTokenizer) -> None:
    block = copy.deepcopy(tiny.encoder.blocks[0]).double()
    x = torch.randn(1, 37, 128, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    cos, sin = rope_tables(37, torch.float64, x.device)
    with torch.no_grad():
        out = block(x, torch.zeros(1, 1, 1, 37, dtype=torch.float64), torch.ones(1, 37, 1), cos, sin)
    expected = reference_block(x[0].numpy(), block_params(tiny, 0), DEFAULT_ATTN_LN_EPS)
    np.testing.assert_allclose(out[0].numpy(), expected, rtol=0, atol=1e-10)


def test_encoder_and_fsq_equal_the_spec_in_float64(tiny: SpeechTokenizer) -> None:
    mel = tiny.log_mel(torch.from_numpy(voiced(0.83, seed=6))).double()  # 83 frames -> 21 tokens
    p = {k: v.double().numpy() for k, v in tiny.state_dict().items()}
    x = gelu(conv_s2(mel.numpy(), p["encoder.conv1.weight"], p["encoder.conv1.bias"]))
    x = gelu(conv_s2(x, p["encoder.conv2.weight"], p["encoder.conv2.bias"])).T
    for i in range(2):
        x = reference_block(x, block_params(tiny, i), DEFAULT_ATTN_LN_EPS)
    z = x @ p["quantizer._codebook.project_down.weight"].T + p["quantizer._codebook.project_down.bias"]
    digits = np.round(np.tanh(z) * 0.9990000128746033) + 1
    expected_ids = (digits * 3 ** np.arange(8)).sum(-1)

    model = SpeechTokenizer(128, 2).double()
    model.load_state_dict(tiny.state_dict())
    with torch.no_grad():
        hidden, lengths = model.encoder(mel[None], torch.tensor([83]))
        ids, _ = model(mel[None], torch.tensor([83]))
    assert lengths.tolist() == [21] and hidden.shape == (1, 21, 128)
    np.testing.assert_allclose(hidden[0].numpy(), x, rtol=0, atol=1e-9)
    assert ids[0].tolist() == expected_ids.astype(np.int64).tolist()
    # float32, as served: the same ids as float64 on this input.
    assert tiny(mel[None].float(), torch.tensor([83]))[0][0].tolist() == expected_ids.tolist()


# --- FSQ ----------------------------------------------------------------------------------------


def test_fsq_ids_follow_the_formula_and_its_rounding() -> None:
    big = 10.0
    assert fsq_ids(torch.full((8,), -big)).item() == 0
    assert fsq_ids(torch.zeros(8)).item() == sum(3**i for i in range(8)) == 3280
    assert fsq_ids(torch.full((8,), big)).item() == 3**8 - 1
    for i in range(8):  # dimension 0 is the least significant digit
        z = torch.full((8,), -big)
        z[i] = big
        assert fsq_ids(z).item() == 2 * 3**i
    # tanh(z) = 0.5004 rounds down only because of the 0.999 factor (0.49990 < 0.5).
    z = torch.full((8,), -big, dtype=torch.float64)
    for tanh_value, digit in [(0.5004, 1), (0.5006, 2), (-0.5004, 1), (-0.5006, 0), (0.49, 1)]:
        z[0] = math.atanh(tanh_value)
        assert fsq_ids(z).item() == digit, tanh_value
    z = torch.randn(3, 50, 8, generator=torch.Generator().manual_seed(0))
    digits = np.round(np.tanh(z.double().numpy()) * 0.9990000128746033) + 1
    np.testing.assert_array_equal(fsq_ids(z).numpy(), (digits * 3 ** np.arange(8)).sum(-1))
