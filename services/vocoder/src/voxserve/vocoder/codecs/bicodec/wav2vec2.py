"""wav2vec2 (stable layer norm variant) as torch modules, up to a chosen transformer layer.

Parameter names equal those of transformers' `Wav2Vec2Model`, so its checkpoints load as they
are; transformers itself is not a dependency of the vocoder. The positional convolution holds its
folded weight (checkpoints store a weight norm over dim 2).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from voxserve.vocoder.codecs.bicodec.config import BiCodecLoadError
from voxserve.vocoder.codecs.checkpoint import LEGACY

CONV_LAYER_NORM_EPS = 1e-5
"""The feature-encoder LayerNorms use torch's default eps, not `layer_norm_eps`."""


@dataclass(frozen=True)
class Wav2Vec2Config:
    """The `config.json` values the computation depends on (defaults as transformers')."""

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    do_stable_layer_norm: bool = False
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    conv_bias: bool = False
    conv_dim: tuple[int, ...] = (512,) * 7
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    mask_time_prob: float = 0.05
    mask_feature_prob: float = 0.0

    def __post_init__(self) -> None:
        checks = [
            (self.do_stable_layer_norm, "do_stable_layer_norm must be true (the large models' variant)"),
            (self.feat_extract_norm == "layer", 'feat_extract_norm must be "layer"'),
            (
                self.hidden_act == "gelu" and self.feat_extract_activation == "gelu",
                "activations must be gelu",
            ),
            (len(self.conv_dim) == len(self.conv_kernel) == len(self.conv_stride) > 0, "conv_* must pair up"),
            (self.hidden_size % self.num_attention_heads == 0, "hidden_size must divide into heads"),
            (
                self.hidden_size % self.num_conv_pos_embedding_groups == 0,
                "hidden_size must divide into groups",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise BiCodecLoadError(f"wav2vec2 config: {message}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Wav2Vec2Config:
        values: dict[str, Any] = {
            f.name: tuple(raw[f.name]) if isinstance(raw[f.name], list) else raw[f.name]
            for f in fields(cls)
            if f.name in raw
        }
        return cls(**values)

    @classmethod
    def xlsr53(cls) -> Wav2Vec2Config:
        """facebook/wav2vec2-large-xlsr-53, the model in Spark-TTS packs."""
        return cls(
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            do_stable_layer_norm=True,
            feat_extract_norm="layer",
            conv_bias=True,
            mask_time_prob=0.075,
        )

    @property
    def samples_per_frame(self) -> int:
        return math.prod(self.conv_stride)

    @property
    def receptive_field(self) -> int:
        """Samples that make the first frame (the shortest input that gives one)."""
        field, jump = 1, 1
        for kernel, stride in zip(self.conv_kernel, self.conv_stride, strict=True):
            field += (kernel - 1) * jump
            jump *= stride
        return field


class ConvLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, bias: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=bias)
        self.layer_norm = nn.LayerNorm(out_channels, eps=CONV_LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(self.conv(x).transpose(1, 2)).transpose(1, 2)
        return F.gelu(x)


class FeatureEncoder(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        channels = (1, *cfg.conv_dim)
        self.conv_layers = nn.ModuleList(
            ConvLayer(channels[i], channels[i + 1], cfg.conv_kernel[i], cfg.conv_stride[i], cfg.conv_bias)
            for i in range(len(cfg.conv_dim))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.conv_layers:
            x = layer(x)
        return x


class FeatureProjection(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(cfg.conv_dim[-1], eps=cfg.layer_norm_eps)
        self.projection = nn.Linear(cfg.conv_dim[-1], cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(x))


class PosConv1d(nn.Conv1d):
    """The positional convolution; checkpoints hold its weight normed over dim 2 (the kernel)."""


class PositionalConvEmbedding(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        k = cfg.num_conv_pos_embeddings
        self.conv = PosConv1d(
            cfg.hidden_size, cfg.hidden_size, k, padding=k // 2, groups=cfg.num_conv_pos_embedding_groups
        )
        # An even kernel with padding k // 2 gives one frame too many; the last one is dropped.
        self.drop_last = k % 2 == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x.transpose(1, 2))
        if self.drop_last:
            y = y[:, :, :-1]
        return F.gelu(y).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, c // self.heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(
            split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        )
        return self.out_proj(y.transpose(1, 2).reshape(b, t, c))


class FeedForward(nn.Module):
    def __init__(self, dim: int, intermediate: int) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(dim, intermediate)
        self.output_dense = nn.Linear(intermediate, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    """Pre-LN transformer layer (`Wav2Vec2EncoderLayerStableLayerNorm`)."""

    def __init__(self, cfg: Wav2Vec2Config) -> None:
        super().__init__()
        self.attention = Attention(cfg.hidden_size, cfg.num_attention_heads)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.feed_forward = FeedForward(cfg.hidden_size, cfg.intermediate_size)
        self.final_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.layer_norm(x))
        return x + self.feed_forward(self.final_layer_norm(x))


class Encoder(nn.Module):
    def __init__(self, cfg: Wav2Vec2Config, num_layers: int) -> None:
        super().__init__()
        self.pos_conv_embed = PositionalConvEmbedding(cfg)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(num_layers))


class Wav2Vec2Trunk(nn.Module):
    """`Wav2Vec2Model` cut after its first `num_layers` transformer layers.

    Hidden state k is numbered as transformers numbers `hidden_states`: 0 is the input of the first
    layer, k >= 1 the output of layer k (without the final encoder LayerNorm, which is not built).
    """

    def __init__(self, cfg: Wav2Vec2Config, num_layers: int) -> None:
        super().__init__()
        if not 0 <= num_layers <= cfg.num_hidden_layers:
            raise BiCodecLoadError(
                f"wav2vec2: {num_layers} layers asked of a {cfg.num_hidden_layers}-layer model"
            )
        self.feature_extractor = FeatureEncoder(cfg)
        self.feature_projection = FeatureProjection(cfg)
        self.encoder = Encoder(cfg, num_layers)

    def mean_hidden_states(self, input_values: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
        """input_values [B, L] -> mean of the hidden states numbered `layers`, [B, T, hidden]."""
        if not layers or not all(0 <= k <= len(self.encoder.layers) for k in layers):
            raise ValueError(
                f"hidden states {tuple(layers)} are not all within 0..{len(self.encoder.layers)}"
            )
        x = self.feature_projection(self.feature_extractor(input_values[:, None]).transpose(1, 2))
        x = x + self.encoder.pos_conv_embed(x)
        # Summed in increasing layer order, as upstream writes (h[11] + h[14] + h[16]) / 3.
        total: torch.Tensor | None = None
        for k in range(max(layers) + 1):
            if k > 0:
                x = self.encoder.layers[k - 1](x)
            for _ in range(list(layers).count(k)):
                total = x if total is None else total + x
        assert total is not None
        return total / len(layers)


def checkpoint_entries(
    model: Wav2Vec2Trunk, naming: tuple[str, str] = LEGACY
) -> Iterator[tuple[str, str, tuple[int, ...]]]:
    """(checkpoint key, parameter name, checkpoint shape) for every parameter of `model`; the
    positional convolution's weight as its (g, v) pair in `naming`."""
    for name, param in model.named_parameters():
        shape = tuple(param.shape)
        if name == "encoder.pos_conv_embed.conv.weight":
            stem = name.removesuffix("weight")
            yield stem + naming[0], name, (1, 1, shape[2])
            yield stem + naming[1], name, shape
        else:
            yield name, name, shape


def wav2vec2_checkpoint_shapes(
    cfg: Wav2Vec2Config, naming: tuple[str, str] = LEGACY
) -> dict[str, tuple[int, ...]]:
    """Every tensor of a `Wav2Vec2Model` state dict (all layers), key -> shape."""
    with torch.device("meta"):
        model = Wav2Vec2Trunk(cfg, cfg.num_hidden_layers)
    shapes: dict[str, tuple[int, ...]] = {}
    if cfg.mask_time_prob > 0 or cfg.mask_feature_prob > 0:
        shapes["masked_spec_embed"] = (cfg.hidden_size,)
    shapes.update((key, shape) for key, _, shape in checkpoint_entries(model, naming))
    shapes["encoder.layer_norm.weight"] = shapes["encoder.layer_norm.bias"] = (cfg.hidden_size,)
    return shapes


def fold_pos_conv_weight(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """g * v / |v|, the norm over every dimension but the kernel's (dim 2), in float64."""
    v64 = v.to(torch.float64)
    return v64 * (g.to(torch.float64) / torch.linalg.vector_norm(v64, dim=(0, 1), keepdim=True))
