"""CAMPPlus's front end: the 24 kHz clip -> 16 kHz -> Kaldi fbank with mean normalisation.

Upstream resamples with torchaudio's sinc resampler (not the soxr one the T3 path uses) and takes
torchaudio's Kaldi-compatible fbank with its defaults; both are pure torch, so the same calls give
the same features here.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torchaudio
import torchaudio.compliance.kaldi as kaldi

from voxserve.vocoder.codecs.base import CodecInputError

SOURCE_RATE = 24000
TARGET_RATE = 16000
NUM_MEL_BINS = 80
FRAME_LENGTH = 400
"""25 ms at 16 kHz."""
FRAME_SHIFT = 160
"""10 ms at 16 kHz."""
MIN_FRAMES = 3
"""The TDNN's stride 2 turns 3 frames into 2, the fewest an unbiased standard deviation takes."""
MIN_SAMPLES_16K = FRAME_LENGTH + FRAME_SHIFT * (MIN_FRAMES - 1)
MIN_CLIP_SAMPLES = 3 * (MIN_SAMPLES_16K - 1) // 2 + 1
"""The shortest 24 kHz clip: the resampler gives ceil(2 L / 3) samples."""


@functools.cache
def _resampler() -> torchaudio.transforms.Resample:
    # Upstream's defaults (sinc_interp_hann, lowpass_filter_width 6, rolloff 0.99).
    return torchaudio.transforms.Resample(SOURCE_RATE, TARGET_RATE)


def resample_24k_to_16k(clip: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A mono 24 kHz clip [L] -> float32 [1, ceil(2 L / 3)] at 16 kHz, on the CPU.

    The same signal feeds the x-vector and the S3 tokenizer's S3Gen prompt tokens.
    Raises CodecInputError naming `audio` for an empty, non-1-D or non-finite clip.
    """
    wave = torch.as_tensor(np.asarray(clip) if not isinstance(clip, torch.Tensor) else clip)
    if wave.ndim != 1 or wave.numel() == 0:
        raise CodecInputError(f"audio must be a non-empty mono clip, got shape {tuple(wave.shape)}")
    wave = wave.detach().to(device="cpu", dtype=torch.float32)
    if not bool(torch.isfinite(wave).all()):
        raise CodecInputError("audio contains non-finite samples")
    with torch.inference_mode():
        return _resampler()(wave[None])


def campplus_fbank(r16: torch.Tensor) -> torch.Tensor:
    """16 kHz audio [1, L] (or [L]) -> float32 [1 + (L - 400) // 160, 80] log-mel fbank, the mean
    over frames subtracted per bin. Raises CodecInputError naming `audio` below MIN_FRAMES frames."""
    wave = r16.reshape(1, -1) if r16.ndim == 1 else r16[0:1]
    samples = wave.shape[-1]
    if samples < MIN_SAMPLES_16K:
        raise CodecInputError(
            f"audio is too short for a speaker x-vector: {samples} samples at 16 kHz, needs at least "
            f"{MIN_SAMPLES_16K} ({MIN_CLIP_SAMPLES} at 24 kHz)"
        )
    with torch.inference_mode():
        feats = kaldi.fbank(wave.to(torch.float32), num_mel_bins=NUM_MEL_BINS)
        return feats - feats.mean(dim=0, keepdim=True)
