"""Randomness as a function of position: the same stream seed and frame always give the same
numbers, whichever chunk (or replica) computes them.

Upstream S3Gen draws the flow's starting noise, the sine generator's harmonic phases and its
noise afresh on every call, so two decodes of the same tokens differ and a stream cut into
chunks has seams. Here each mel frame's numbers come from a generator seeded by (stream seed,
frame index).
"""

from __future__ import annotations

import math

import torch

_MASK64 = (1 << 64) - 1


def mix(seed: int, index: int, stream: int) -> int:
    """A 63-bit seed for (seed, index, stream) (splitmix64 finaliser: nearby inputs decorrelate)."""
    z = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + stream * 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) & ((1 << 63) - 1)


# What each draw is for, so different uses of one frame never share numbers.
FLOW_NOISE, SINE_NOISE, HARMONIC_PHASE = 1, 2, 3


def frame_normal(seed: int, first_frame: int, frames: int, per_frame: int, use: int) -> torch.Tensor:
    """Standard normal numbers [frames, per_frame] for frames first_frame .. first_frame+frames-1."""
    out = torch.empty(frames, per_frame)
    generator = torch.Generator()
    for i in range(frames):
        generator.manual_seed(mix(seed, first_frame + i, use))
        out[i] = torch.randn(per_frame, generator=generator)
    return out


def flow_noise(seed: int, first_frame: int, frames: int, mel_bins: int) -> torch.Tensor:
    """The flow's starting noise for mel frames [first_frame, first_frame + frames): [mel_bins, frames]."""
    return frame_normal(seed, first_frame, frames, mel_bins, FLOW_NOISE).T.contiguous()


def sine_noise(
    seed: int, first_frame: int, frames: int, harmonics: int, samples_per_frame: int
) -> torch.Tensor:
    """The sine generator's noise for the samples of those frames: [harmonics, frames x samples_per_frame]."""
    noise = frame_normal(seed, first_frame, frames, harmonics * samples_per_frame, SINE_NOISE)
    return noise.view(frames, harmonics, samples_per_frame).permute(1, 0, 2).reshape(harmonics, -1)


def harmonic_phases(seed: int, harmonics: int) -> torch.Tensor:
    """One random phase per harmonic for the whole stream, uniform in [-pi, pi); the fundamental's is 0."""
    generator = torch.Generator().manual_seed(mix(seed, 0, HARMONIC_PHASE))
    phases = (torch.rand(harmonics, generator=generator) * 2 - 1) * math.pi
    phases[0] = 0.0
    return phases
