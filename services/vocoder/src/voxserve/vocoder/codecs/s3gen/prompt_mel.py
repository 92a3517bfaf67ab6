"""The S3Gen prompt's mel: the 24 kHz log-mel the flow was trained on (Matcha/CosyVoice's), of
the reference clip an enrolled voice continues from."""

from __future__ import annotations

import functools

import torch
import torchaudio

SAMPLE_RATE = 24000
N_FFT = 1920
HOP = 480
MEL_BINS = 80
F_MAX = 8000.0


@functools.cache
def _mel_basis() -> torch.Tensor:
    """[80, 961]: librosa's Slaney mel filters (Slaney scale, area-normalised)."""
    banks = torchaudio.functional.melscale_fbanks(
        N_FFT // 2 + 1, 0.0, F_MAX, MEL_BINS, SAMPLE_RATE, norm="slaney", mel_scale="slaney"
    )
    return banks.T.contiguous()


def prompt_mel(clip: torch.Tensor) -> torch.Tensor:
    """clip float32 [L] at 24 kHz (L >= 480) -> log-mel [floor(L / 480), 80], time-major.

    Reflect-padded by (n_fft - hop) / 2 on each side, STFT without centring (periodic Hann),
    magnitude with a 1e-9 floor under the root, natural log of the mel clamped at 1e-5.
    """
    pad = (N_FFT - HOP) // 2
    wave = torch.nn.functional.pad(clip.to(torch.float32)[None, None], (pad, pad), mode="reflect")[0]
    spectrum = torch.stft(
        wave,
        N_FFT,
        hop_length=HOP,
        win_length=N_FFT,
        window=torch.hann_window(N_FFT),
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )[0]
    magnitude = torch.sqrt(spectrum.real**2 + spectrum.imag**2 + 1e-9)
    mel = _mel_basis() @ magnitude
    return torch.log(torch.clamp(mel, min=1e-5)).T.contiguous()
