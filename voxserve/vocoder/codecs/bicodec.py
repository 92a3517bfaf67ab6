"""BiCodec (Spark-TTS) decoder: semantic ids + 32 global ids -> 16 kHz waveform.

The module tree mirrors the upstream checkpoint so that parameter names equal the tensor names
in `BiCodec/model.safetensors` (weight-normed convolutions hold their folded `weight`; the file
stores `weight_g`/`weight_v`). Only the decode path is built; encode-only tensors are ignored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from safetensors import safe_open
from torch import nn

from voxserve.vocoder.codecs.base import CodecInputError, VoiceConditioning

LAYER_NORM_EPS = 1e-6
PRENET_SAMPLING_LAYERS = 2
"""ConvNeXt layers in each `prenet.downsample.i` backbone (fixed upstream, not in the config)."""
RESIDUAL_DILATIONS = (1, 3, 9)


class BiCodecLoadError(ValueError):
    """A BiCodec config or checkpoint that cannot be used; the message names what is wrong."""


# --------------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class QuantizerConfig:
    input_dim: int
    codebook_size: int
    codebook_dim: int


@dataclass(frozen=True)
class SpeakerEncoderConfig:
    out_dim: int
    latent_dim: int
    token_num: int
    fsq_levels: tuple[int, ...]
    fsq_num_quantizers: int = 1

    @property
    def global_vocab_size(self) -> int:
        return math.prod(self.fsq_levels)


@dataclass(frozen=True)
class PrenetConfig:
    input_channels: int
    vocos_dim: int
    vocos_intermediate_dim: int
    vocos_num_layers: int
    out_channels: int
    condition_dim: int
    sample_ratios: tuple[int, ...] = (1, 1)
    use_tanh_at_final: bool = False


@dataclass(frozen=True)
class WaveGeneratorConfig:
    input_channel: int
    channels: int
    rates: tuple[int, ...]
    kernel_sizes: tuple[int, ...]


def _read_section(raw: Mapping[str, Any], name: str, cls: type[Any]) -> Any:
    section = raw.get(name)
    if not isinstance(section, Mapping):
        raise BiCodecLoadError(f"BiCodec config: audio_tokenizer.{name} is missing or not a mapping")
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name in section:
            value = section[field.name]
            values[field.name] = tuple(value) if isinstance(value, list) else value
        elif field.default is dataclasses.MISSING:
            raise BiCodecLoadError(f"BiCodec config: audio_tokenizer.{name}.{field.name} is missing")
    return cls(**values)


@dataclass(frozen=True)
class BiCodecConfig:
    """Decode-path hyper-parameters of a BiCodec `config.yaml` (key `audio_tokenizer`)."""

    quantizer: QuantizerConfig
    speaker_encoder: SpeakerEncoderConfig
    prenet: PrenetConfig
    decoder: WaveGeneratorConfig
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        q, s, p, d = self.quantizer, self.speaker_encoder, self.prenet, self.decoder
        checks = [
            (q.input_dim == p.input_channels, "quantizer.input_dim must equal prenet.input_channels"),
            (p.condition_dim == s.out_dim, "prenet.condition_dim must equal speaker_encoder.out_dim"),
            (p.out_channels == s.out_dim, "prenet.out_channels must equal speaker_encoder.out_dim"),
            (d.input_channel == p.out_channels, "decoder.input_channel must equal prenet.out_channels"),
            (all(r == 1 for r in p.sample_ratios), "only prenet.sample_ratios of 1 are supported"),
            (s.fsq_num_quantizers == 1, "only speaker_encoder.fsq_num_quantizers 1 is supported"),
            (len(s.fsq_levels) > 0 and all(n >= 2 for n in s.fsq_levels), "fsq_levels must be >= 2"),
            (len(d.rates) == len(d.kernel_sizes) > 0, "decoder.rates and kernel_sizes must pair up"),
            # (k - s) even is what makes the transposed convolution give exactly s * T samples.
            (
                all((k - r) % 2 == 0 and k >= r for k, r in zip(d.kernel_sizes, d.rates, strict=False)),
                "decoder.kernel_sizes[i] - rates[i] must be even and >= 0",
            ),
            (d.channels % 2 ** len(d.rates) == 0, "decoder.channels must halve once per rate"),
        ]
        for ok, message in checks:
            if not ok:
                raise BiCodecLoadError(f"BiCodec config: {message}")

    @property
    def samples_per_token(self) -> int:
        return math.prod(self.decoder.rates)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> BiCodecConfig:
        """Build from the parsed `config.yaml` (either the whole file or its `audio_tokenizer`)."""
        tokenizer = raw.get("audio_tokenizer", raw)
        mel = tokenizer.get("mel_params") or {}
        return cls(
            quantizer=_read_section(tokenizer, "quantizer", QuantizerConfig),
            speaker_encoder=_read_section(tokenizer, "speaker_encoder", SpeakerEncoderConfig),
            prenet=_read_section(tokenizer, "prenet", PrenetConfig),
            decoder=_read_section(tokenizer, "decoder", WaveGeneratorConfig),
            sample_rate=int(mel.get("sample_rate", 16000)),
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> BiCodecConfig:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
        if not isinstance(raw, Mapping):
            raise BiCodecLoadError(f"BiCodec config {path} is not a mapping")
        return cls.from_dict(raw)

    @classmethod
    def full_size(cls) -> BiCodecConfig:
        """The published Spark-TTS-0.5B values."""
        return cls(
            quantizer=QuantizerConfig(input_dim=1024, codebook_size=8192, codebook_dim=8),
            speaker_encoder=SpeakerEncoderConfig(
                out_dim=1024, latent_dim=128, token_num=32, fsq_levels=(4, 4, 4, 4, 4, 4)
            ),
            prenet=PrenetConfig(
                input_channels=1024,
                vocos_dim=384,
                vocos_intermediate_dim=2048,
                vocos_num_layers=12,
                out_channels=1024,
                condition_dim=1024,
            ),
            decoder=WaveGeneratorConfig(
                input_channel=1024, channels=1536, rates=(8, 5, 4, 2), kernel_sizes=(16, 11, 8, 4)
            ),
        )


# --------------------------------------------------------------------------------------------------
# Modules


class WNConv1d(nn.Conv1d):
    """A Conv1d whose checkpoint tensors are weight-normed (`weight_g`, `weight_v`)."""


class WNConvTranspose1d(nn.ConvTranspose1d):
    """A ConvTranspose1d whose checkpoint tensors are weight-normed (`weight_g`, `weight_v`)."""


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


# --------------------------------------------------------------------------------------------------
# Checkpoint names, receptive field, loading


_WEIGHT_NORMED = (WNConv1d, WNConvTranspose1d)
_NEW_WN_SUFFIXES = {
    "weight_g": "parametrizations.weight.original0",
    "weight_v": "parametrizations.weight.original1",
}


def build_meta_decoder(config: BiCodecConfig) -> BiCodecDecoder:
    """The module on the meta device: shapes and structure without memory."""
    with torch.device("meta"):
        return BiCodecDecoder(config)


def _checkpoint_entries(model: nn.Module) -> Iterator[tuple[str, str, tuple[int, ...]]]:
    """(checkpoint key, parameter name, checkpoint shape) for every parameter of `model`."""
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            shape = tuple(param.shape)
            if isinstance(module, _WEIGHT_NORMED) and param_name == "weight":
                yield f"{module_name}.weight_g", full, (shape[0],) + (1,) * (len(shape) - 1)
                yield f"{module_name}.weight_v", full, shape
            else:
                yield full, full, shape


def checkpoint_shapes(config: BiCodecConfig) -> dict[str, tuple[int, ...]]:
    """Decode-path checkpoint key -> shape, weight-norm in the stored `weight_g`/`weight_v` form."""
    return {key: shape for key, _, shape in _checkpoint_entries(build_meta_decoder(config))}


def conv_chain(model: BiCodecDecoder) -> list[nn.Module]:
    """The convolutions on the token-to-waveform path, in forward order."""
    return [m for m in model.modules() if isinstance(m, nn.Conv1d | nn.ConvTranspose1d)]


def receptive_field_tokens(model: BiCodecDecoder) -> int:
    """One-sided context, in tokens, that makes a window's middle decode exactly as a full decode.

    Walks the convolutions backwards from the samples of one token, tracking the interval of
    positions each layer's input needs. Every layer zero-pads, so each of those intervals must lie
    inside the window at that layer's rate; the answer is the largest such need, rounded up.
    """
    layers = conv_chain(model)
    rate = math.prod(m.stride[0] for m in layers if isinstance(m, nn.ConvTranspose1d))
    lo, hi = 0, rate - 1
    need = 0
    for m in reversed(layers):
        k, s, p, d = (int(v[0]) for v in (m.kernel_size, m.stride, m.padding, m.dilation))  # type: ignore[index]
        if isinstance(m, nn.ConvTranspose1d):
            # Input i feeds outputs i * s - p + j for j in [0, k).
            lo, hi = -((k - 1 - lo - p) // s), (hi + p) // s
            rate //= s
        else:
            if s != 1:
                raise ValueError("strided convolutions are not part of the BiCodec decode path")
            lo, hi = lo - p, hi - p + d * (k - 1)
        need = max(need, -(lo // rate), -((rate - 1 - hi) // rate))
    return need


def _fold_weight_norm(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    v64 = v.to(torch.float64)
    norm = torch.linalg.vector_norm(v64, dim=tuple(range(1, v.ndim)), keepdim=True)
    return v64 * (g.to(torch.float64) / norm)


def _listing(items: list[str], sep: str, limit: int = 20) -> str:
    shown = sep.join(items[:limit])
    return shown if len(items) <= limit else f"{shown}{sep}... ({len(items) - limit} more)"


def load_decode_state_dict(
    path: str | Path, config: BiCodecConfig, *, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """Read the decode-path tensors of a BiCodec `model.safetensors`, weight-norm folded.

    Accepts `weight_g`/`weight_v` and `parametrizations.weight.original0/1`; every other tensor in
    the file (the encoder side) is ignored. Raises BiCodecLoadError naming missing or misshapen
    tensors.
    """
    entries = list(_checkpoint_entries(build_meta_decoder(config)))
    raw: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    with safe_open(str(path), framework="pt", device="cpu") as f:
        available = set(f.keys())
        for key, _, shape in entries:
            source = key
            prefix, _, suffix = key.rpartition(".")
            if key not in available and suffix in _NEW_WN_SUFFIXES:
                source = f"{prefix}.{_NEW_WN_SUFFIXES[suffix]}"
            if source not in available:
                missing.append(key)
                continue
            found = tuple(f.get_slice(source).get_shape())
            if found != shape:
                mismatched.append(f"{source}: expected {shape}, found {found}")
                continue
            raw[key] = f.get_tensor(source)
    if missing or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensor(s): {_listing(missing, ', ')}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): {_listing(mismatched, '; ')}")
        raise BiCodecLoadError(f"BiCodec checkpoint {path}: " + " | ".join(parts))

    state: dict[str, torch.Tensor] = {}
    for key, param_name, _ in entries:
        if key.endswith(".weight_g"):
            continue
        if key.endswith(".weight_v"):
            tensor = _fold_weight_norm(raw[key.removesuffix("_v") + "_g"], raw[key])
        else:
            tensor = raw[key]
        state[param_name] = tensor.to(device=device, dtype=dtype)
    return state


# --------------------------------------------------------------------------------------------------
# Codec


def _check_pack_config(path: Path, config: BiCodecConfig) -> None:
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as f:
        top = yaml.safe_load(f) or {}
    for key, actual in (("latent_hop_length", config.samples_per_token), ("sample_rate", config.sample_rate)):
        if key in top and int(top[key]) != actual:
            raise BiCodecLoadError(f"{path}: {key} is {top[key]}, but the BiCodec config gives {actual}")


class BiCodec:
    """The `Codec` for Spark-TTS packs: conditions on 32 global ids, decodes semantic ids."""

    name = "bicodec"

    def __init__(self, config: BiCodecConfig, model: BiCodecDecoder) -> None:
        self.config = config
        self.model = model.eval().requires_grad_(False)
        param = next(model.parameters())
        self.device = param.device
        self.dtype = param.dtype
        self.sample_rate = config.sample_rate
        self.samples_per_token = config.samples_per_token
        self.token_vocab_size = config.quantizer.codebook_size
        self.receptive_field_tokens = receptive_field_tokens(model)
        self.global_token_count = config.speaker_encoder.token_num
        self.global_vocab_size = config.speaker_encoder.global_vocab_size
        self.conditioning_dim = config.speaker_encoder.out_dim
        # Outputs are float32 as the protocol says, except that a float64 codec (exactness checks)
        # keeps its precision.
        self.output_dtype = torch.float64 if self.dtype == torch.float64 else torch.float32

    @classmethod
    def from_files(
        cls,
        config: BiCodecConfig,
        weights_path: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> BiCodec:
        state = load_decode_state_dict(weights_path, config, dtype=dtype, device=str(device))
        model = build_meta_decoder(config)
        model.load_state_dict(state, strict=True, assign=True)
        return cls(config, model)

    @classmethod
    def from_pack(
        cls, pack_dir: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> BiCodec:
        """Load `<pack>/BiCodec/config.yaml` and `<pack>/BiCodec/model.safetensors`.

        `<pack>/config.yaml`, where present, must agree on sample rate and samples per token.
        """
        pack = Path(pack_dir)
        config = BiCodecConfig.from_yaml(pack / "BiCodec" / "config.yaml")
        _check_pack_config(pack / "config.yaml", config)
        return cls.from_files(config, pack / "BiCodec" / "model.safetensors", device=device, dtype=dtype)

    def condition(self, voice: VoiceConditioning) -> torch.Tensor:
        """The speaker vector d [D] for a voice's global ids."""
        ids = voice.global_ids
        if len(ids) != self.global_token_count:
            raise CodecInputError(
                f"global_ids must hold exactly {self.global_token_count} ids, got {len(ids)}"
            )
        for i, g in enumerate(ids):
            if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < self.global_vocab_size:
                raise CodecInputError(
                    f"global_ids[{i}] is {g!r}; each id must be an int in [0, {self.global_vocab_size})"
                )
        with torch.no_grad():
            tensor = torch.tensor([ids], dtype=torch.int64, device=self.device)
            return self.model.speaker_vector(tensor)[0]

    @torch.inference_mode()
    def decode(self, tokens: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """tokens int64 [B, T], conditioning [B, D] -> waveform [B, T * 320] on the codec's device.

        float32, or float64 for a codec loaded in float64.
        """
        if tokens.dtype != torch.int64 or tokens.ndim != 2:
            raise CodecInputError(f"tokens must be int64 [B, T], got {tokens.dtype} {tuple(tokens.shape)}")
        batch, length = tokens.shape
        if conditioning.shape != (batch, self.conditioning_dim):
            raise CodecInputError(
                f"conditioning must be [{batch}, {self.conditioning_dim}], got {tuple(conditioning.shape)}"
            )
        if length == 0 or batch == 0:
            return torch.zeros(
                batch, length * self.samples_per_token, dtype=self.output_dtype, device=self.device
            )
        tokens = tokens.to(self.device)
        # An out-of-range id would be a device-side assert on CUDA, which poisons the whole process.
        low, high = torch.aminmax(tokens)
        if int(low) < 0 or int(high) >= self.token_vocab_size:
            raise CodecInputError(
                f"tokens must lie in [0, {self.token_vocab_size}), got [{int(low)}, {int(high)}]"
            )
        speaker = conditioning.to(device=self.device, dtype=self.dtype)
        return self.model(tokens, speaker).to(self.output_dtype)
