"""The BiCodec speaker path: a 6 s reference clip -> 32 global token ids.

Mel magnitudes -> ECAPA-TDNN latent (its x-vector branch is not needed for tokens and not built)
-> perceiver resampler -> FSQ ids. Module names equal the checkpoint names, so `SpeakerTokenizer`'s
state dict is the `mel_transformer.*` and `speaker_encoder.*` tensors of `BiCodec/model.safetensors`.
Everything runs in float32, as upstream does: the ids come out of a rounding.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
import torchaudio
from safetensors import safe_open
from torch import nn

from voxserve.vocoder.codecs.bicodec.config import BiCodecConfig, BiCodecLoadError, MelConfig

ECAPA_CHANNELS = 512
"""Fixed upstream (`ECAPA_TDNN_GLOB_c512`), not in the config."""
ECAPA_LATENT_CHANNELS = 3 * 512
RES2_SCALE = 8
SE_BOTTLENECK = 128
RES2_DILATIONS = (2, 3, 4)
PERCEIVER_DEPTH = 2
PERCEIVER_HEADS = 8
PERCEIVER_DIM_HEAD = 64
PERCEIVER_FF_MULT = 4
FSQ_BOUND_EPS = 1e-3
MEL_BUFFERS = ("mel_transformer.spectrogram.window", "mel_transformer.mel_scale.fb")
"""Deterministic buffers: loaded from the checkpoint where it has them (as upstream's non-strict
load does), recomputed otherwise."""


def mel_transformer(cfg: MelConfig) -> torchaudio.transforms.MelSpectrogram:
    """Upstream's mel front end: magnitude (power 1), slaney filterbank and scale, no log."""
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate,
        n_fft=cfg.n_fft,
        win_length=cfg.win_length,
        hop_length=cfg.hop_length,
        f_min=float(cfg.mel_fmin),
        f_max=None if cfg.mel_fmax is None else float(cfg.mel_fmax),
        n_mels=cfg.num_mels,
        power=1.0,
        norm="slaney",
        mel_scale="slaney",
    )


class Conv1dReluBn(nn.Module):
    """Conv1d, then ReLU, then BatchNorm (upstream's order)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, padding=padding)
        self.bn = nn.BatchNorm1d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class Res2Conv1dReluBn(nn.Module):
    """Res2Net: channel groups convolved in a chain, each fed the previous group's output; the
    last group passes through."""

    def __init__(self, channels: int, dilation: int, scale: int = RES2_SCALE) -> None:
        super().__init__()
        self.width = channels // scale
        self.convs = nn.ModuleList(
            nn.Conv1d(self.width, self.width, 3, padding=dilation, dilation=dilation)
            for _ in range(scale - 1)
        )
        self.bns = nn.ModuleList(nn.BatchNorm1d(self.width) for _ in range(scale - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.split(x, self.width, dim=1)
        out = []
        s = groups[0]
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            if i >= 1:
                s = s + groups[i]
            s = bn(F.relu(conv(s)))
            out.append(s)
        out.append(groups[len(self.convs)])
        return torch.cat(out, dim=1)


class SEConnect(nn.Module):
    def __init__(self, channels: int, bottleneck: int = SE_BOTTLENECK) -> None:
        super().__init__()
        self.linear1 = nn.Linear(channels, bottleneck)
        self.linear2 = nn.Linear(bottleneck, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(x.mean(dim=2)))))
        return x * gate.unsqueeze(2)


class SERes2Block(nn.Module):
    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.se_res2block = nn.Sequential(
            Conv1dReluBn(channels, channels),
            Res2Conv1dReluBn(channels, dilation),
            Conv1dReluBn(channels, channels),
            SEConnect(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.se_res2block(x)


class EcapaTdnn(nn.Module):
    """ECAPA-TDNN up to its frame-level latent: mel [B, T, F] -> [B, 1536, T]."""

    def __init__(self, feat_dim: int, channels: int = ECAPA_CHANNELS) -> None:
        super().__init__()
        self.layer1 = Conv1dReluBn(feat_dim, channels, kernel_size=5, padding=2)
        self.layer2 = SERes2Block(channels, RES2_DILATIONS[0])
        self.layer3 = SERes2Block(channels, RES2_DILATIONS[1])
        self.layer4 = SERes2Block(channels, RES2_DILATIONS[2])
        self.conv = nn.Conv1d(3 * channels, ECAPA_LATENT_CHANNELS, kernel_size=1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        out1 = self.layer1(mel.transpose(1, 2))
        out2 = self.layer2(out1)
        out3 = self.layer3(out2)
        out4 = self.layer4(out3)
        return F.relu(self.conv(torch.cat([out2, out3, out4], dim=1)))


class CrossAttention(nn.Module):
    """Latents attend to themselves and the context together; no mask, no bias."""

    def __init__(self, dim: int, heads: int = PERCEIVER_HEADS, dim_head: int = PERCEIVER_DIM_HEAD) -> None:
        super().__init__()
        self.heads = heads
        self.scale = dim_head**-0.5
        inner = heads * dim_head
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, -1).transpose(1, 2)

    def forward(self, latents: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = self._heads(self.to_q(latents))
        k, v = (self._heads(t) for t in self.to_kv(torch.cat([latents, context], dim=1)).chunk(2, dim=-1))
        attn = (torch.matmul(q, k.transpose(-1, -2)) * self.scale).softmax(dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2)
        return self.to_out(out.reshape(out.shape[0], out.shape[1], -1))


class GEGLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, gate = x.chunk(2, dim=-1)
        return F.gelu(gate) * a


def feed_forward(dim: int, mult: int = PERCEIVER_FF_MULT) -> nn.Sequential:
    inner = int(dim * mult * 2 / 3)
    return nn.Sequential(nn.Linear(dim, 2 * inner), GEGLU(), nn.Linear(inner, dim))


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class PerceiverResampler(nn.Module):
    """[B, T, 1536] frames -> [B, num_latents, dim] (no pre-norm; one RMSNorm at the end)."""

    def __init__(self, dim: int, dim_context: int, num_latents: int) -> None:
        super().__init__()
        self.proj_context = nn.Linear(dim_context, dim)
        self.latents = nn.Parameter(torch.zeros(num_latents, dim))
        self.layers = nn.ModuleList(
            nn.ModuleList([CrossAttention(dim), feed_forward(dim)]) for _ in range(PERCEIVER_DEPTH)
        )
        self.norm = RMSNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.proj_context(x)
        latents = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        for layer in self.layers:
            attn, ff = cast(nn.ModuleList, layer)
            latents = attn(latents, context) + latents
            latents = ff(latents) + latents
        return self.norm(latents)


def fsq_ids(z: torch.Tensor, levels: tuple[int, ...]) -> torch.Tensor:
    """FSQ codes z [..., len(levels)] -> ids [...] (int32), computed in float32 as upstream.

    Digit i = round(tanh(z_i + shift) * half - offset) + levels_i // 2 (torch.round: half to
    even), id = sum digit_i * prod(levels[:i]).
    """
    lv = torch.tensor(levels, dtype=torch.int32, device=z.device)
    half_l = (lv - 1) * (1 + FSQ_BOUND_EPS) / 2
    offset = torch.where(lv % 2 == 0, 0.5, 0.0)
    shift = (offset / half_l).atanh()
    bounded = (z.float() + shift).tanh() * half_l - offset
    half_width = lv // 2
    digits = torch.round(bounded) / half_width * half_width + half_width
    basis = torch.cumprod(torch.cat([lv.new_ones(1), lv[:-1]]), dim=0)
    return (digits * basis).sum(dim=-1).to(torch.int32)


class FSQProjectIn(nn.Module):
    def __init__(self, latent_dim: int, codebook_dim: int) -> None:
        super().__init__()
        self.project_in = nn.Linear(latent_dim, codebook_dim)


class SpeakerEncoder(nn.Module):
    """The tokenize half of upstream's `SpeakerEncoder`: mel [B, T, F] -> ids [B, token_num]."""

    def __init__(self, config: BiCodecConfig) -> None:
        super().__init__()
        cfg = config.speaker_encoder
        self.levels = cfg.fsq_levels
        self.speaker_encoder = EcapaTdnn(cfg.input_dim)
        self.perceiver_sampler = PerceiverResampler(cfg.latent_dim, ECAPA_LATENT_CHANNELS, cfg.token_num)
        self.quantizer = FSQProjectIn(cfg.latent_dim, len(cfg.fsq_levels))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        latent = self.speaker_encoder(mel)
        tokens = self.perceiver_sampler(latent.transpose(1, 2))
        return fsq_ids(self.quantizer.project_in(tokens), self.levels)


class SpeakerTokenizer(nn.Module):
    """A reference clip's global token ids."""

    def __init__(self, mel: torchaudio.transforms.MelSpectrogram, encoder: SpeakerEncoder) -> None:
        super().__init__()
        self.mel_transformer = mel
        self.speaker_encoder = encoder

    def mel(self, ref_wav: torch.Tensor) -> torch.Tensor:
        """ref_wav [B, L] -> magnitudes [B, n_mels, 1 + L // hop]."""
        return self.mel_transformer(ref_wav)

    def global_ids(self, ref_wav: torch.Tensor) -> torch.Tensor:
        """ref_wav float32 [1, L] -> int32 [token_num]."""
        if ref_wav.ndim != 2 or ref_wav.shape[0] != 1:
            raise ValueError(f"ref_wav must be [1, L], got {tuple(ref_wav.shape)}")
        param = next(self.parameters())
        mel = self.mel(ref_wav.to(device=param.device, dtype=torch.float32))
        return self.speaker_encoder(mel.transpose(1, 2))[0]


def build_meta_speaker_tokenizer(config: BiCodecConfig) -> SpeakerTokenizer:
    """The encoder on the meta device; the mel front end computed on the CPU (it is small, and its
    filterbank cannot be computed on the meta device)."""
    mel = mel_transformer(config.mel)
    with torch.device("meta"):
        encoder = SpeakerEncoder(config)
    return SpeakerTokenizer(mel, encoder)


def speaker_checkpoint_shapes(config: BiCodecConfig) -> dict[str, tuple[int, ...]]:
    """Speaker-path checkpoint key -> shape (BatchNorm statistics and the mel buffers included)."""
    return {k: tuple(v.shape) for k, v in build_meta_speaker_tokenizer(config).state_dict().items()}


def speaker_checkpoint_problems(
    keys_and_shapes: dict[str, tuple[int, ...]], config: BiCodecConfig
) -> tuple[list[str], list[str]]:
    """(missing keys, misshapen keys) of the speaker path in a checkpoint's key -> shape map;
    the mel buffers are optional."""
    missing, misshapen = [], []
    for key, shape in speaker_checkpoint_shapes(config).items():
        found = keys_and_shapes.get(key)
        if found is None:
            if key not in MEL_BUFFERS:
                missing.append(key)
        elif found != shape:
            misshapen.append(f"{key}: expected {shape}, found {found}")
    return missing, misshapen


def load_speaker_tokenizer(
    weights_path: str | Path, config: BiCodecConfig, device: str | torch.device = "cpu"
) -> SpeakerTokenizer:
    """The speaker path from a BiCodec `model.safetensors`, float32, in eval mode."""
    model = build_meta_speaker_tokenizer(config)
    expected = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    with safe_open(str(weights_path), framework="pt", device="cpu") as f:
        available = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys() if key in expected}
        missing, misshapen = speaker_checkpoint_problems(available, config)
        if missing or misshapen:
            problems = [f"missing {key}" for key in missing] + [f"misshapen {m}" for m in misshapen]
            raise BiCodecLoadError(
                f"BiCodec checkpoint {weights_path}: the speaker encoder has {len(problems)} "
                f"problem(s): {'; '.join(problems[:10])}"
            )
        for key in available:
            state[key] = f.get_tensor(key)
    for key in MEL_BUFFERS:
        state.setdefault(key, expected[key])
    for key, tensor in state.items():
        dtype = torch.float32 if tensor.is_floating_point() else expected[key].dtype
        state[key] = tensor.to(dtype=dtype)
    model.load_state_dict(state, strict=True, assign=True)
    return model.to(device).eval().requires_grad_(False)
