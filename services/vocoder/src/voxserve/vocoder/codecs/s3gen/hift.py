"""HiFT: mel (50 Hz) -> 24 kHz waveform, a HiFi-GAN generator driven by a neural source filter
and finished by an inverse STFT.

Randomness (the sine generator's harmonic phases and its noise) is passed in, not drawn here, so
a caller can make a stream's audio a pure function of its seed and sample positions.
"""

from __future__ import annotations

import itertools
import math
import operator

import torch
import torch.nn.functional as F
from torch import nn

from voxserve.vocoder.codecs.checkpoint import WNConv1d, WNConvTranspose1d
from voxserve.vocoder.codecs.s3gen.config import HiftConfig


class Snake(nn.Module):
    """x + sin^2(alpha x) / alpha, alpha per channel (linear scale)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha[None, :, None]
        return x + (1.0 / (alpha + 1e-9)) * torch.sin(x * alpha).pow(2)


class ResBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs1 = nn.ModuleList(
            WNConv1d(channels, channels, kernel, dilation=d, padding=(kernel * d - d) // 2) for d in dilations
        )
        self.convs2 = nn.ModuleList(
            WNConv1d(channels, channels, kernel, padding=(kernel - 1) // 2) for _ in dilations
        )
        self.activations1 = nn.ModuleList(Snake(channels) for _ in dilations)
        self.activations2 = nn.ModuleList(Snake(channels) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv1, conv2, act1, act2 in zip(
            self.convs1, self.convs2, self.activations1, self.activations2, strict=True
        ):
            x = x + conv2(act2(conv1(act1(x))))
        return x


class F0Predictor(nn.Module):
    """Mel -> f0 in Hz per frame: weight-normed convs with ELU, then a linear read-out."""

    def __init__(self, config: HiftConfig):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(config.f0_layers):
            layers += [
                WNConv1d(config.mel_bins if i == 0 else config.f0_channels, config.f0_channels, 3, padding=1)
            ]
            layers += [nn.ELU()]
        self.condnet = nn.Sequential(*layers)
        self.classifier = nn.Linear(config.f0_channels, 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel [B, 80, T] -> f0 [B, T], in the predictor's dtype whatever the mel's."""
        mel = mel.to(self.classifier.weight.dtype)
        return torch.abs(self.classifier(self.condnet(mel).transpose(1, 2)).squeeze(-1))


class SourceModule(nn.Module):
    """Harmonic-plus-noise excitation from f0 (the original NSF sine generator)."""

    def __init__(self, config: HiftConfig):
        super().__init__()
        self.config = config
        self.l_linear = nn.Linear(config.harmonics + 1, 1)

    def sine_waves(
        self, f0: torch.Tensor, start_phase: torch.Tensor, harmonic_phase: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """f0 [B, L] at the sample rate -> excitation [B, H+1, L].

        `start_phase` [B, H+1]: each harmonic's accumulated phase (in cycles) before the first
        sample, 0 at the start of a stream; `harmonic_phase` [B, H+1]: the random phase offsets
        (radians; the fundamental's is 0); `noise` [B, H+1, L]: standard normal.
        """
        c = self.config
        # Phase is accumulated in float64: in float32 a minute of cumulative cycles loses the
        # fraction that matters, and a stream cut into chunks would drift from a whole decode.
        cycles = self.cycles(f0)
        phase = (torch.cumsum(cycles, dim=-1) + start_phase.double()[:, :, None]) % 1
        sine = c.nsf_alpha * torch.sin((2 * math.pi * phase).float() + harmonic_phase[:, :, None])
        voiced = (f0.float() > c.voiced_threshold).float()[:, None, :]
        noise_amp = voiced * c.nsf_sigma + (1 - voiced) * c.nsf_alpha / 3
        return sine * voiced + noise_amp * noise

    def cycles(self, f0: torch.Tensor) -> torch.Tensor:
        """Each harmonic's phase advance per sample, in cycles: f0 [B, L] -> float64 [B, H+1, L]."""
        c = self.config
        multiples = torch.arange(1, c.harmonics + 2, device=f0.device, dtype=torch.float64)
        return f0.double()[:, None, :] * multiples[None, :, None] / c.sample_rate

    def forward(self, excitation: torch.Tensor) -> torch.Tensor:
        """[B, H+1, L] -> source [B, 1, L]."""
        return torch.tanh(self.l_linear(excitation.transpose(1, 2).to(self.l_linear.weight.dtype))).transpose(
            1, 2
        )


class HiFT(nn.Module):
    def __init__(self, config: HiftConfig):
        super().__init__()
        self.config = config
        c = config
        self.f0_predictor = F0Predictor(c)
        self.m_source = SourceModule(c)
        self.conv_pre = WNConv1d(c.mel_bins, c.base_channels, 7, padding=3)
        self.ups = nn.ModuleList(
            WNConvTranspose1d(
                c.base_channels >> i, c.base_channels >> (i + 1), k, stride=u, padding=(k - u) // 2
            )
            for i, (u, k) in enumerate(zip(c.upsample_rates, c.upsample_kernel_sizes, strict=True))
        )
        stft_channels = c.n_fft + 2
        # Each stage's source input is the STFT of the excitation brought to that stage's rate.
        down_rates = list(
            reversed(list(itertools.accumulate([1, *reversed(c.upsample_rates[1:])], operator.mul)))
        )
        self.source_downs = nn.ModuleList()
        self.source_resblocks = nn.ModuleList()
        for i, (rate, k, dilations) in enumerate(
            zip(down_rates, c.source_resblock_kernel_sizes, c.source_resblock_dilations, strict=True)
        ):
            channels = c.base_channels >> (i + 1)
            if rate == 1:
                self.source_downs.append(nn.Conv1d(stft_channels, channels, 1))
            else:
                self.source_downs.append(
                    nn.Conv1d(stft_channels, channels, rate * 2, stride=rate, padding=rate // 2)
                )
            self.source_resblocks.append(ResBlock(channels, k, dilations))
        self.resblocks = nn.ModuleList(
            ResBlock(c.base_channels >> (i + 1), k, d)
            for i in range(len(c.upsample_rates))
            for k, d in zip(c.resblock_kernel_sizes, c.resblock_dilations, strict=True)
        )
        self.conv_post = WNConv1d(c.base_channels >> len(c.upsample_rates), stft_channels, 7, padding=3)

    def source(
        self, mel: torch.Tensor, start_phase: torch.Tensor, harmonic_phase: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """The excitation signal [B, 1, T x 480] for mel [B, 80, T]."""
        f0 = self.f0_predictor(mel)
        f0 = f0.repeat_interleave(self.config.samples_per_frame, dim=1)
        return self.m_source(self.m_source.sine_waves(f0, start_phase, harmonic_phase, noise))

    def decode(self, mel: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """mel [B, 80, T] and its excitation [B, 1, 480 T] -> waveform [B, 480 T]."""
        c = self.config
        # The transforms run in float32 whatever the weights' dtype; so does their window (a
        # buffer would be cast with the weights, and a rounded window colours every sample).
        window = torch.hann_window(c.n_fft, periodic=True, dtype=torch.float32, device=source.device)
        spec = torch.stft(
            source.squeeze(1).float(), c.n_fft, c.hop, c.n_fft, window=window, return_complex=True
        )
        spec = torch.view_as_real(spec)
        s = torch.cat([spec[..., 0], spec[..., 1]], dim=1).to(mel.dtype)
        x = self.conv_pre(mel)
        kernels = len(c.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, c.lrelu_slope))
            if i == len(self.ups) - 1:
                x = F.pad(x, (1, 0), mode="reflect")
            x = x + self.source_resblocks[i](self.source_downs[i](s))
            x = sum(self.resblocks[i * kernels + j](x) for j in range(kernels)) / kernels
        x = self.conv_post(F.leaky_relu(x))
        half = c.n_fft // 2 + 1
        magnitude = torch.exp(x[:, :half].float()).clamp(max=1e2)
        phase = torch.sin(x[:, half:].float())
        wave = torch.istft(
            torch.complex(magnitude * torch.cos(phase), magnitude * torch.sin(phase)),
            c.n_fft,
            c.hop,
            c.n_fft,
            window=window,
        )
        return wave.clamp(-c.audio_limit, c.audio_limit)
