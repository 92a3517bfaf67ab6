"""Random CAMPPlus (S3Gen x-vector) tensors under the upstream `speaker_encoder.*` names.

The architecture is fixed upstream, so every pack holds it at full size (6.8 M parameters, about
28 MB in float32). The BatchNorm running statistics are measured on a few synthetic voices, so
each layer sees the unit-scale inputs a trained model's statistics give it and different voices
get clearly different x-vectors; made-up statistics would leave them nearly equal.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from voxserve.vocoder.codecs.s3gen.campplus import PREFIX, CAMPPlusNetwork, meta_campplus
from voxserve.vocoder.codecs.s3gen.campplus_fbank import SOURCE_RATE, campplus_fbank, resample_24k_to_16k

_CALIBRATION_VOICES = 8
_CALIBRATION_SECONDS = 3.0
_PITCH_HZ = (85.0, 280.0)
_HARMONICS = 30
_FORMANTS = 3


def campplus_tensors(seed: int) -> dict[str, torch.Tensor]:
    """Every `speaker_encoder.*` tensor of `s3gen.safetensors` (937, BatchNorm buffers included)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {k: tuple(v.shape) for k, v in meta_campplus().state_dict().items()}
    state = {name: _init_tensor(name, shape, gen) for name, shape in sorted(shapes.items())}
    _calibrate_batch_norms(state, gen)
    return {PREFIX + name: tensor.contiguous() for name, tensor in state.items()}


def _init_tensor(name: str, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.tensor(0, dtype=torch.int64)
    if leaf == "running_mean":
        return torch.zeros(shape)
    if leaf == "running_var":
        return torch.ones(shape)
    if len(shape) == 1:
        if leaf == "weight":  # BatchNorm scale
            return 0.8 + 0.4 * torch.rand(shape, generator=gen)
        return torch.randn(shape, generator=gen) * 0.1  # BatchNorm shift, CAM conv bias
    # He scale: every conv feeds a ReLU, directly or after a BatchNorm.
    return torch.randn(shape, generator=gen) * math.sqrt(2.0 / math.prod(shape[1:]))


def calibration_voices(count: int, seconds: float, gen: torch.Generator) -> torch.Tensor:
    """[count, samples] 24 kHz voiced signals: harmonics of a random pitch with vibrato, shaped by
    a random spectral tilt and formants, under a syllable-rate envelope, with a little noise."""
    samples = int(seconds * SOURCE_RATE)
    t = torch.arange(samples, dtype=torch.float64) / SOURCE_RATE

    def uniform(low: float, high: float, n: int = 1) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)

    voices = []
    for _ in range(count):
        pitch = float(uniform(*_PITCH_HZ))
        phase = (
            2 * math.pi * torch.cumsum(pitch * (1 + 0.03 * torch.sin(2 * math.pi * 5 * t)), 0) / SOURCE_RATE
        )
        formants, widths = uniform(300.0, 3500.0, _FORMANTS), uniform(80.0, 300.0, _FORMANTS)
        k = torch.arange(1, _HARMONICS + 1, dtype=torch.float64)
        shape = ((k[:, None] * pitch - formants) / widths).square().neg().exp().sum(1)
        amplitudes = k ** -float(uniform(0.5, 1.5)) * (0.2 + shape)
        wave = (amplitudes[:, None] * torch.sin(k[:, None] * phase)).sum(0)
        envelope = 0.3 + 0.7 * torch.sin(2 * math.pi * float(uniform(2.0, 6.0)) * t).square()
        wave = wave * envelope + 0.02 * torch.randn(samples, generator=gen, dtype=torch.float64)
        voices.append(float(uniform(0.1, 0.6)) * wave / wave.abs().max())
    return torch.stack(voices).float()


def _calibrate_batch_norms(state: dict[str, torch.Tensor], gen: torch.Generator) -> None:
    """Set every BatchNorm's running statistics to those of one batch of synthetic voices."""
    network = CAMPPlusNetwork()
    network.load_state_dict(state)
    for module in network.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.reset_running_stats()
            module.momentum = None  # one batch: the statistics are exactly that batch's
    clips = calibration_voices(_CALIBRATION_VOICES, _CALIBRATION_SECONDS, gen)
    feats = torch.stack([campplus_fbank(resample_24k_to_16k(clip)) for clip in clips])
    network.train()
    with torch.no_grad():
        network(feats.clone())
    for name, buffer in network.named_buffers():
        state[name] = buffer.detach().clone()
