"""The BiCodec decode path as torch modules.

The module tree mirrors the upstream checkpoint so that parameter names equal the tensor names
in `BiCodec/model.safetensors` (weight-normed convolutions hold their folded `weight`; the file
stores `weight_g`/`weight_v`). Only the decode path is built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from voxserve.vocoder.codecs.bicodec.config import (
    BiCodecConfig,
    PrenetConfig,
    QuantizerConfig,
    SpeakerEncoderConfig,
    WaveGeneratorConfig,
)
from voxserve.vocoder.codecs.checkpoint import WNConv1d, WNConvTranspose1d

LAYER_NORM_EPS = 1e-6
PRENET_SAMPLING_LAYERS = 2
"""ConvNeXt layers in each `prenet.downsample.i` backbone (fixed upstream, not in the config)."""
RESIDUAL_DILATIONS = (1, 3, 9)


class Snake1d(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.sin(self.alpha * x).pow(2) / (self.alpha + 1e-9)


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(channels),
            WNConv1d(channels, channels, kernel_size=7, dilation=dilation, padding=3 * dilation),
            Snake1d(channels),
            WNConv1d(channels, channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class DecoderBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            Snake1d(in_channels),
            WNConvTranspose1d(
                in_channels, out_channels, kernel_size, stride=stride, padding=(kernel_size - stride) // 2
            ),
            *(ResidualUnit(out_channels, d) for d in RESIDUAL_DILATIONS),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class WaveGenerator(nn.Module):
    """DAC-style upsampler: [B, C, T] latent frames -> [B, 1, T * prod(rates)] in [-1, 1]."""

    def __init__(self, cfg: WaveGeneratorConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [WNConv1d(cfg.input_channel, cfg.channels, kernel_size=7, padding=3)]
        channels = cfg.channels
        for kernel_size, stride in zip(cfg.kernel_sizes, cfg.rates, strict=True):
            layers.append(DecoderBlock(channels, channels // 2, kernel_size, stride))
            channels //= 2
        layers += [Snake1d(channels), WNConv1d(channels, 1, kernel_size=7, padding=3), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine terms, then a scale and shift predicted from the speaker vector."""

    def __init__(self, condition_dim: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.scale = nn.Linear(condition_dim, dim)
        self.shift = nn.Linear(condition_dim, dim)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        # x: [B, T, C]; condition: [B, D]
        x = F.layer_norm(x, (self.dim,), eps=LAYER_NORM_EPS)
        return x * self.scale(condition).unsqueeze(1) + self.shift(condition).unsqueeze(1)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate_dim: int, condition_dim: int | None) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm: nn.Module = (
            AdaLayerNorm(condition_dim, dim) if condition_dim else nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        )
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        # x: [B, C, T]
        y = self.dwconv(x).transpose(1, 2)
        y = self.norm(y, condition) if isinstance(self.norm, AdaLayerNorm) else self.norm(y)
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(y)))
        return x + y.transpose(1, 2)


class VocosBackbone(nn.Module):
    """Takes [B, C, T], returns [B, T, C] (the layout change is part of the upstream contract)."""

    def __init__(self, dim: int, intermediate_dim: int, num_layers: int, condition_dim: int | None) -> None:
        super().__init__()
        self.embed = nn.Conv1d(dim, dim, kernel_size=7, padding=3)
        self.norm: nn.Module = (
            AdaLayerNorm(condition_dim, dim) if condition_dim else nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        )
        self.convnext = nn.ModuleList(
            ConvNeXtBlock(dim, intermediate_dim, condition_dim) for _ in range(num_layers)
        )
        self.final_layer_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(x).transpose(1, 2)
        x = self.norm(x, condition) if isinstance(self.norm, AdaLayerNorm) else self.norm(x)
        x = x.transpose(1, 2)
        for block in self.convnext:
            x = block(x, condition)
        return self.final_layer_norm(x.transpose(1, 2))


class UnitSamplingBlock(nn.Module):
    """The upstream sampling block at ratio 1: its three branches are all the identity, so 3 * x.

    Takes [B, T, C] and returns [B, C, T], which is what makes it chain with `VocosBackbone`.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 3.0 * x.transpose(1, 2)


class Prenet(nn.Module):
    """Vocos-style backbone conditioned on the speaker vector: [B, C_in, T] -> [B, C_out, T]."""

    def __init__(self, cfg: PrenetConfig) -> None:
        super().__init__()
        dim = cfg.vocos_dim
        self.linear_pre = nn.Linear(cfg.input_channels, dim)
        self.downsample = nn.Sequential(
            *(
                nn.Sequential(
                    UnitSamplingBlock(),
                    VocosBackbone(dim, cfg.vocos_intermediate_dim, PRENET_SAMPLING_LAYERS, None),
                )
                for _ in cfg.sample_ratios
            )
        )
        self.vocos_backbone = VocosBackbone(
            dim, cfg.vocos_intermediate_dim, cfg.vocos_num_layers, cfg.condition_dim
        )
        self.linear = nn.Linear(dim, cfg.out_channels)
        self.use_tanh_at_final = cfg.use_tanh_at_final

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        x = self.linear_pre(x.transpose(1, 2))
        x = self.downsample(x).transpose(1, 2)
        x = self.linear(self.vocos_backbone(x, condition)).transpose(1, 2)
        return torch.tanh(x) if self.use_tanh_at_final else x


class SemanticDequantizer(nn.Module):
    """Semantic ids [B, T] -> latent frames [B, C, T]: raw codebook rows, then a 1x1 projection."""

    def __init__(self, cfg: QuantizerConfig) -> None:
        super().__init__()
        self.codebook = nn.Embedding(cfg.codebook_size, cfg.codebook_dim)
        self.out_project: nn.Module = (
            WNConv1d(cfg.codebook_dim, cfg.input_dim, kernel_size=1)
            if cfg.codebook_dim != cfg.input_dim
            else nn.Identity()
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out_project(self.codebook(ids).transpose(1, 2))


def fsq_dequantize(ids: torch.Tensor, levels: tuple[int, ...]) -> torch.Tensor:
    """FSQ ids [...] -> codes [..., len(levels)] (float64).

    Digit i is (id // prod(levels[:i])) % levels[i] and maps to (digit - h) / h with h = levels[i] // 2;
    for levels of 4 that is one of {-1, -0.5, 0, 0.5}.
    """
    levels_t = torch.tensor(levels, dtype=torch.int64, device=ids.device)
    basis = torch.cumprod(torch.cat([levels_t.new_ones(1), levels_t[:-1]]), dim=0)
    digits = (ids.unsqueeze(-1) // basis) % levels_t
    half = (levels_t // 2).to(torch.float64)
    return (digits.to(torch.float64) - half) / half


class FSQProjection(nn.Module):
    def __init__(self, cfg: SpeakerEncoderConfig) -> None:
        super().__init__()
        self.levels = cfg.fsq_levels
        self.project_out = nn.Linear(len(cfg.fsq_levels), cfg.latent_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        codes = fsq_dequantize(ids, self.levels).to(self.project_out.weight.dtype)
        return self.project_out(codes)


class SpeakerDequantizer(nn.Module):
    """Global ids [B, N] -> speaker vector d [B, D]."""

    def __init__(self, cfg: SpeakerEncoderConfig) -> None:
        super().__init__()
        self.quantizer = FSQProjection(cfg)
        self.project = nn.Linear(cfg.latent_dim * cfg.token_num, cfg.out_dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        z = self.quantizer(ids).transpose(1, 2)  # [B, latent, N]
        # Upstream flattens channel-major: index = channel * N + token.
        return self.project(z.reshape(z.shape[0], -1))


class BiCodecDecoder(nn.Module):
    """The BiCodec decode path with checkpoint-compatible parameter names."""

    def __init__(self, cfg: BiCodecConfig) -> None:
        super().__init__()
        # Registration order is forward order for every convolution below: `conv_chain` relies on it.
        self.quantizer = SemanticDequantizer(cfg.quantizer)
        self.speaker_encoder = SpeakerDequantizer(cfg.speaker_encoder)
        self.prenet = Prenet(cfg.prenet)
        self.decoder = WaveGenerator(cfg.decoder)

    def speaker_vector(self, global_ids: torch.Tensor) -> torch.Tensor:
        return self.speaker_encoder(global_ids)

    def forward(self, tokens: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """tokens [B, T] int64, speaker [B, D] -> waveform [B, T * samples_per_token]."""
        x = self.prenet(self.quantizer(tokens), speaker) + speaker.unsqueeze(-1)
        return self.decoder(x).squeeze(1)
