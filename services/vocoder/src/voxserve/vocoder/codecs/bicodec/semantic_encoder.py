"""BiCodec's semantic encoder: wav2vec2 features -> encoder -> factorized VQ -> semantic ids.

Parameter names equal the checkpoint's (`encoder.*`, `quantizer.in_project.*`,
`quantizer.codebook.weight`); `in_project` holds its folded weight norm.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from voxserve.vocoder.codecs.bicodec.config import (
    BiCodecConfig,
    BiCodecLoadError,
    EncoderConfig,
    QuantizerConfig,
)
from voxserve.vocoder.codecs.bicodec.model import PRENET_SAMPLING_LAYERS, UnitSamplingBlock, VocosBackbone
from voxserve.vocoder.codecs.checkpoint import (
    LEGACY,
    CheckpointError,
    WNConv1d,
    checkpoint_entries,
    load_state_dict,
)

ENCODER_SAMPLING_LAYERS = PRENET_SAMPLING_LAYERS
"""ConvNeXt layers in each `encoder.downsample.i` backbone: fixed upstream at 2, as for the prenet."""


class InputBackbone(VocosBackbone):
    """A Vocos backbone whose input width differs from its own (`embed`: C_in -> dim)."""

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int) -> None:
        super().__init__(dim, intermediate_dim, num_layers, None)
        self.embed = nn.Conv1d(input_channels, dim, kernel_size=7, padding=3)


class BiCodecEncoder(nn.Module):
    """Upstream `Encoder`: [B, C_in, T] -> [B, C_out, T] at the same frame rate."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        dim = cfg.vocos_dim
        self.encoder = InputBackbone(
            cfg.input_channels, dim, cfg.vocos_intermediate_dim, cfg.vocos_num_layers
        )
        self.downsample = nn.Sequential(
            *(
                nn.Sequential(
                    UnitSamplingBlock(),
                    VocosBackbone(dim, cfg.vocos_intermediate_dim, ENCODER_SAMPLING_LAYERS, None),
                )
                for _ in cfg.sample_ratios
            )
        )
        self.project = nn.Linear(dim, cfg.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Each backbone returns [B, T, C]; each sampling block turns that back into [B, C, T].
        return self.project(self.downsample(self.encoder(x))).transpose(1, 2)


class SemanticQuantizer(nn.Module):
    """The encode half of `FactorizedVectorQuantize`: project to the codebook space, nearest row."""

    def __init__(self, cfg: QuantizerConfig) -> None:
        super().__init__()
        self.in_project: nn.Module = (
            WNConv1d(cfg.input_dim, cfg.codebook_dim, kernel_size=1)
            if cfg.input_dim != cfg.codebook_dim
            else nn.Identity()
        )
        self.codebook = nn.Embedding(cfg.codebook_size, cfg.codebook_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, C, T] -> ids [B, T] int64: nearest codebook row after L2-normalising both sides."""
        b, _, t = z.shape
        e = F.normalize(self.in_project(z).transpose(1, 2).reshape(b * t, -1))
        c = F.normalize(self.codebook.weight)
        # Upstream's own expression (not a bare cosine argmax), so near-ties resolve as there.
        dist = e.pow(2).sum(1, keepdim=True) - 2 * e @ c.t() + c.pow(2).sum(1, keepdim=True).t()
        return (-dist).max(1)[1].reshape(b, t)


class SemanticEncoder(nn.Module):
    """wav2vec2 features [B, T, C_in] -> semantic ids, with checkpoint-compatible names."""

    def __init__(self, config: BiCodecConfig) -> None:
        super().__init__()
        if config.encoder is None:
            raise BiCodecLoadError("BiCodec config: audio_tokenizer.encoder is missing (a decode-only pack)")
        self.encoder = BiCodecEncoder(config.encoder)
        self.quantizer = SemanticQuantizer(config.quantizer)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features [B, T, C_in] -> ids [B, T] int64."""
        return self.quantizer(self.encoder(features.transpose(1, 2)))

    def semantic_ids(self, features: torch.Tensor) -> torch.Tensor:
        """features [1, T, C_in] (one utterance) -> ids [T] int64."""
        if features.ndim != 3 or features.shape[0] != 1:
            raise ValueError(f"semantic_ids takes features [1, T, C], got {tuple(features.shape)}")
        param = self.quantizer.codebook.weight
        with torch.no_grad():
            return self(features.to(device=param.device, dtype=param.dtype))[0]


def build_meta_semantic_encoder(config: BiCodecConfig) -> SemanticEncoder:
    with torch.device("meta"):
        return SemanticEncoder(config)


def semantic_checkpoint_shapes(config: BiCodecConfig) -> dict[str, tuple[int, ...]]:
    """Semantic-path checkpoint key -> shape, weight norm in the stored `weight_g`/`weight_v` form."""
    return {key: shape for key, _, shape in checkpoint_entries(build_meta_semantic_encoder(config))}


def load_semantic_encoder(
    weights_path: str | Path,
    config: BiCodecConfig,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> SemanticEncoder:
    """The semantic encoder from a BiCodec `model.safetensors`, eval mode, without gradients.

    Other tensors of the file are ignored. Raises BiCodecLoadError naming missing or misshapen
    tensors.
    """
    model = build_meta_semantic_encoder(config)
    try:
        state = load_state_dict(
            weights_path, model, naming=LEGACY, dtype=dtype, device=str(device), label="BiCodec checkpoint"
        )
    except CheckpointError as exc:
        raise BiCodecLoadError(str(exc)) from exc
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval().requires_grad_(False)
