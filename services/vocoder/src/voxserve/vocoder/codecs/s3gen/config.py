"""S3Gen sizes. `FULL` is the published Chatterbox configuration (its tensor names and shapes
are those of `s3gen.safetensors`); `TINY` keeps every structural feature at small sizes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FlowConfig:
    vocab_size: int = 6561
    model_dim: int = 512
    """Token embedding and conformer width."""
    mel_bins: int = 80
    speaker_dim: int = 192
    attention_heads: int = 8
    ffn_dim: int = 2048
    blocks: int = 6
    up_blocks: int = 4
    lookahead_tokens: int = 3
    token_mel_ratio: int = 2
    estimator_channels: int = 256
    estimator_heads: int = 8
    estimator_head_dim: int = 64
    transformer_blocks: int = 4
    """Transformer blocks per estimator stage."""
    mid_blocks: int = 12
    time_embed_dim: int = 320
    time_mlp_dim: int = 1024
    steps: int = 10
    guidance_rate: float = 0.7
    meanflow: bool = False
    """Chatterbox-Turbo: two steps on a linear schedule, no guidance, a time-embedding mixer."""

    @property
    def estimator_in_channels(self) -> int:
        # [x | mu | speaker | prompt condition], each mel_bins wide
        return 4 * self.mel_bins


@dataclass(frozen=True)
class HiftConfig:
    mel_bins: int = 80
    base_channels: int = 512
    harmonics: int = 8
    sample_rate: int = 24000
    upsample_rates: tuple[int, ...] = (8, 5, 3)
    upsample_kernel_sizes: tuple[int, ...] = (16, 11, 7)
    n_fft: int = 16
    hop: int = 4
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    source_resblock_kernel_sizes: tuple[int, ...] = (7, 7, 11)
    source_resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    f0_channels: int = 512
    f0_layers: int = 5
    nsf_alpha: float = 0.1
    nsf_sigma: float = 0.003
    voiced_threshold: float = 10.0
    lrelu_slope: float = 0.1
    audio_limit: float = 0.99

    @property
    def samples_per_frame(self) -> int:
        return math.prod(self.upsample_rates) * self.hop


@dataclass(frozen=True)
class S3GenConfig:
    flow: FlowConfig = field(default_factory=FlowConfig)
    hift: HiftConfig = field(default_factory=HiftConfig)

    @property
    def samples_per_token(self) -> int:
        return self.flow.token_mel_ratio * self.hift.samples_per_frame


FULL = S3GenConfig()
TINY = S3GenConfig(
    flow=FlowConfig(
        model_dim=64,
        attention_heads=2,
        ffn_dim=128,
        blocks=2,
        up_blocks=1,
        estimator_channels=32,
        estimator_heads=2,
        estimator_head_dim=16,
        transformer_blocks=1,
        mid_blocks=1,
        time_embed_dim=320,
        time_mlp_dim=64,
        steps=4,
    ),
    hift=HiftConfig(
        base_channels=32,
        resblock_kernel_sizes=(3, 7),
        resblock_dilations=((1, 3), (1, 3)),
        source_resblock_kernel_sizes=(7, 7, 11),
        source_resblock_dilations=((1, 3), (1, 3), (1, 3)),
        f0_channels=32,
    ),
)
