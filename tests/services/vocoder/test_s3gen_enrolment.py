"""S3Gen enrolment on the tiny chatterbox and s3 packs: the flow's prompt (speech tokens, their
24 kHz mel, the CAMPPlus x-vector) and, on a chatterbox pack, T3's speaker embedding and prompt
tokens; what a pack without the encoders says."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soxr
import torch
from safetensors.torch import load_file, save_file

from tests.gateway.enrolment_harness import voiced
from voxserve.random_packs.tiny_chatterbox import write_chatterbox_pack
from voxserve.random_packs.tiny_s3 import write_s3_pack
from voxserve.vocoder.codecs.base import CodecInputError, EncoderUnavailable
from voxserve.vocoder.codecs.s3gen.codec import S3GenCodec
from voxserve.vocoder.codecs.s3gen.prompt_mel import prompt_mel
from voxserve.vocoder.codecs.s3gen.speech_tokenizer import load_speech_tokenizer

RATE = 24000


@pytest.fixture(scope="module")
def chatterbox_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pack = tmp_path_factory.mktemp("chatterbox")
    write_chatterbox_pack(pack, seed=4)
    return pack


@pytest.fixture(scope="module")
def chatterbox(chatterbox_pack: Path) -> S3GenCodec:
    return S3GenCodec.from_pack(chatterbox_pack)


def reference(seconds: float, **kwargs: float) -> np.ndarray:
    return voiced(seconds, RATE, **kwargs).astype(np.float32)  # type: ignore[arg-type]


def slaney_mel_basis(rate: int, n_fft: int, bins: int, f_max: float) -> np.ndarray:
    """librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax) written out: Slaney scale and area."""

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        linear = f / (200.0 / 3)
        log = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log, linear)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        linear = m * (200.0 / 3)
        log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
        return np.where(m >= 15.0, log, linear)

    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(f_max), bins + 2))
    weights = np.zeros((bins, freqs.size))
    for i in range(bins):
        lower = (freqs - edges[i]) / (edges[i + 1] - edges[i])
        upper = (edges[i + 2] - freqs) / (edges[i + 2] - edges[i + 1])
        weights[i] = np.maximum(0, np.minimum(lower, upper)) * 2.0 / (edges[i + 2] - edges[i])
    return weights


def test_the_prompt_mel_is_the_matcha_log_mel_of_the_spec() -> None:
    clip = reference(1.01)
    padded = np.pad(clip.astype(np.float64), 720, mode="reflect")
    frames = 1 + (padded.size - 1920) // 480
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1920) / 1920)
    spectra = np.stack([np.fft.rfft(padded[i * 480 : i * 480 + 1920] * window) for i in range(frames)])
    magnitude = np.sqrt(spectra.real**2 + spectra.imag**2 + 1e-9)
    expected = np.log(np.maximum(magnitude @ slaney_mel_basis(RATE, 1920, 80, 8000.0).T, 1e-5))
    mel = prompt_mel(torch.from_numpy(clip)).numpy()
    assert mel.shape == (clip.size // 480, 80) == expected.shape
    assert np.abs(mel - expected).max() < 2e-4


def test_a_chatterbox_reference_gives_both_models_parts(
    chatterbox: S3GenCodec, chatterbox_pack: Path
) -> None:
    audio = reference(10.0)
    encoded = chatterbox.encode_voice(audio, RATE, False)
    prompt = encoded.s3_prompt
    assert prompt is not None and prompt.prompt_mel is not None
    # 10 s: 500 mel frames at 24 kHz and 250 tokens at 25 Hz; the mel is the clip's own.
    assert len(prompt.prompt_tokens) == 250 and prompt.prompt_mel.shape == (500, 80)
    assert np.array_equal(prompt.prompt_mel, prompt_mel(torch.from_numpy(audio)).numpy())
    assert len(prompt.xvector) == 192 and all(np.isfinite(prompt.xvector))
    assert len(encoded.speaker_embedding) == 256
    assert np.linalg.norm(encoded.speaker_embedding) == pytest.approx(1.0, abs=1e-5)
    # T3's prompt: the first 6 s, at most 150 tokens, all speech ids.
    assert len(encoded.t3_prompt_tokens) == 150
    assert all(0 <= t < 6561 for t in (*encoded.t3_prompt_tokens, *prompt.prompt_tokens))
    again = chatterbox.encode_voice(audio, RATE, False)  # deterministic
    assert again.s3_prompt is not None and again.s3_prompt.prompt_mel is not None
    assert again.speaker_embedding == encoded.speaker_embedding
    assert again.t3_prompt_tokens == encoded.t3_prompt_tokens
    assert (again.s3_prompt.prompt_tokens, again.s3_prompt.xvector) == (prompt.prompt_tokens, prompt.xvector)
    assert np.array_equal(again.s3_prompt.prompt_mel, prompt.prompt_mel)
    other = chatterbox.encode_voice(reference(10.0, pitch=230.0, seed=9), RATE, False)
    assert other.speaker_embedding != encoded.speaker_embedding
    assert other.s3_prompt is not None and other.s3_prompt.xvector != prompt.xvector
    # A short reference: fewer tokens, two mel frames each.
    short = chatterbox.encode_voice(reference(2.5), RATE, False).s3_prompt
    assert short is not None and short.prompt_mel is not None
    assert short.prompt_mel.shape == (2 * len(short.prompt_tokens), 80) and len(short.prompt_tokens) == 62


def test_the_t3_prompt_tokens_are_the_tokenizers_of_the_first_six_seconds(
    chatterbox: S3GenCodec, chatterbox_pack: Path
) -> None:
    audio = reference(8.0, seed=3)
    encoded = chatterbox.encode_voice(audio, RATE, False)
    whole16 = soxr.resample(audio, RATE, 16000, quality="HQ")[: 6 * 16000]
    tokenizer = load_speech_tokenizer(chatterbox_pack / "s3gen.safetensors")
    assert encoded.t3_prompt_tokens == tuple(int(t) for t in tokenizer.tokens(whole16, max_tokens=150))


def test_an_s3_pack_enrols_the_flow_prompt_only(tmp_path: Path) -> None:
    write_s3_pack(tmp_path, seed=2)
    encoded = S3GenCodec.from_pack(tmp_path).encode_voice(reference(4.0), RATE, False)
    assert encoded.s3_prompt is not None and len(encoded.s3_prompt.prompt_tokens) == 100
    assert encoded.speaker_embedding == () and encoded.t3_prompt_tokens == ()


def test_a_pack_without_the_encoders_names_what_it_lacks(chatterbox_pack: Path, tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(chatterbox_pack, pack)
    (pack / "ve.safetensors").unlink()
    weights = load_file(str(pack / "s3gen.safetensors"))
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("tokenizer.")}, str(pack / "s3gen.safetensors")
    )
    codec = S3GenCodec.from_pack(pack)  # decoding is unaffected
    with pytest.raises(EncoderUnavailable) as caught:
        codec.encode_voice(reference(3.0), RATE, False)
    assert "ve.safetensors" in str(caught.value) and "tokenizer." in str(caught.value)


def test_bad_audio_is_refused_naming_it(chatterbox: S3GenCodec) -> None:
    with pytest.raises(CodecInputError, match="sample_rate"):
        chatterbox.encode_voice(reference(3.0), 16000, False)
    with pytest.raises(CodecInputError, match="audio"):
        chatterbox.encode_voice(reference(0.02), RATE, False)
    with pytest.raises(CodecInputError, match="non-finite"):
        chatterbox.encode_voice(np.full(RATE, np.nan, np.float32), RATE, False)
