"""CAMPPlus, S3Gen's speaker x-vector: the <=10 s 24 kHz reference clip -> `embedding` [192].

Kaldi fbank (campplus_fbank) -> FCM 2-D head -> TDNN -> three CAM dense blocks with transits ->
mean and unbiased std over time -> dense + BatchNorm without affine. The architecture is fixed
upstream (no config); module names equal the checkpoint names after `speaker_encoder.`, BatchNorm
statistics included. The x-vector is not normalised here (the flow does that).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from voxserve.vocoder.codecs.checkpoint import check_found
from voxserve.vocoder.codecs.s3gen.campplus_fbank import NUM_MEL_BINS, campplus_fbank, resample_24k_to_16k

PREFIX = "speaker_encoder."
EMBEDDING_DIM = 192
HEAD_CHANNELS = 32
HEAD_FREQ_STRIDE = 8
"""layer1, layer2 and conv2 each halve the mel axis: 80 bins -> 10 rows per channel."""
INIT_CHANNELS = 128
GROWTH_RATE = 32
BOTTLENECK = 4 * GROWTH_RATE
DENSE_BLOCKS = ((12, 1), (24, 2), (16, 2))
"""(layers, dilation) of block1..3; kernel 3 throughout."""
CAM_SEGMENT = 100
CAM_REDUCTION = 2


def batchnorm_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([("batchnorm", nn.BatchNorm1d(channels)), ("relu", nn.ReLU())]))


def segment_means(x: torch.Tensor, segment: int = CAM_SEGMENT) -> torch.Tensor:
    """x [B, C, T] -> the mean of each consecutive `segment`-frame run, broadcast back to its frames;
    the last, partial run averages only its own frames (avg_pool's ceil mode divides by them)."""
    pooled = F.avg_pool1d(x, kernel_size=segment, stride=segment, ceil_mode=True)
    return pooled.repeat_interleave(segment, dim=-1)[..., : x.shape[-1]]


def statistics_pooling(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T] -> [B, 2C]: mean and unbiased standard deviation over time."""
    return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)


class BasicResBlock(nn.Module):
    def __init__(self, channels: int, freq_stride: int) -> None:
        super().__init__()
        stride = (freq_stride, 1)
        self.conv1 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut = nn.Sequential()
        if freq_stride != 1:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class FCM(nn.Module):
    """The 2-D head: fbank [B, 80, T] -> [B, 32 * 10, T], rows channel-major (c * 10 + f)."""

    def __init__(self, channels: int = HEAD_CHANNELS) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(BasicResBlock(channels, 2), BasicResBlock(channels, 1))
        self.layer2 = nn.Sequential(BasicResBlock(channels, 2), BasicResBlock(channels, 1))
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(feats.unsqueeze(1))))
        out = self.layer2(self.layer1(out))
        out = F.relu(self.bn2(self.conv2(out)))
        return out.flatten(1, 2)


class TDNNLayer(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(c_in, c_out, 5, stride=2, padding=2, bias=False)
        self.nonlinear = batchnorm_relu(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class CAMLayer(nn.Module):
    """A dilated conv gated by a context of the utterance mean plus the segment means."""

    def __init__(self, channels: int, c_out: int, dilation: int) -> None:
        super().__init__()
        self.linear_local = nn.Conv1d(channels, c_out, 3, padding=dilation, dilation=dilation, bias=False)
        self.linear1 = nn.Conv1d(channels, channels // CAM_REDUCTION, 1)
        self.linear2 = nn.Conv1d(channels // CAM_REDUCTION, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = x.mean(dim=-1, keepdim=True) + segment_means(x)
        gate = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
        return self.linear_local(x) * gate


class CAMDenseTDNNLayer(nn.Module):
    def __init__(self, c_in: int, dilation: int) -> None:
        super().__init__()
        self.nonlinear1 = batchnorm_relu(c_in)
        self.linear1 = nn.Conv1d(c_in, BOTTLENECK, 1, bias=False)
        self.nonlinear2 = batchnorm_relu(BOTTLENECK)
        self.cam_layer = CAMLayer(BOTTLENECK, GROWTH_RATE, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class CAMDenseTDNNBlock(nn.Module):
    """Layers `tdnnd1..n`, each one's output appended to its input's channels."""

    def __init__(self, layers: int, c_in: int, dilation: int) -> None:
        super().__init__()
        for i in range(layers):
            self.add_module(f"tdnnd{i + 1}", CAMDenseTDNNLayer(c_in + i * GROWTH_RATE, dilation))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = torch.cat([x, layer(x)], dim=1)
        return x


class TransitLayer(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.nonlinear = batchnorm_relu(c_in)
        self.linear = nn.Conv1d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class StatsPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return statistics_pooling(x)


class DenseLayer(nn.Module):
    """Pooled stats [B, C] -> [B, EMBEDDING_DIM]: a 1x1 conv, then BatchNorm without affine."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(c_in, c_out, 1, bias=False)
        self.nonlinear = nn.Sequential(OrderedDict([("batchnorm", nn.BatchNorm1d(c_out, affine=False))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


class CAMPPlusNetwork(nn.Module):
    """fbank [B, T, 80] -> x-vectors [B, 192]."""

    def __init__(self) -> None:
        super().__init__()
        self.head = FCM()
        channels = HEAD_CHANNELS * (NUM_MEL_BINS // HEAD_FREQ_STRIDE)
        self.xvector = nn.Sequential(OrderedDict([("tdnn", TDNNLayer(channels, INIT_CHANNELS))]))
        channels = INIT_CHANNELS
        for i, (layers, dilation) in enumerate(DENSE_BLOCKS, start=1):
            self.xvector.add_module(f"block{i}", CAMDenseTDNNBlock(layers, channels, dilation))
            channels += layers * GROWTH_RATE
            self.xvector.add_module(f"transit{i}", TransitLayer(channels, channels // 2))
            channels //= 2
        self.xvector.add_module("out_nonlinear", batchnorm_relu(channels))
        self.xvector.add_module("stats", StatsPool())
        self.xvector.add_module("dense", DenseLayer(2 * channels, EMBEDDING_DIM))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.xvector(self.head(feats.transpose(1, 2)))


class CampPlus:
    """A loaded CAMPPlus (eval mode, float32) and the audio front end before it."""

    def __init__(self, network: CAMPPlusNetwork) -> None:
        self.network = network
        self.device = next(network.parameters()).device

    def xvector(self, clip24k: np.ndarray) -> np.ndarray:
        """The <=10 s 24 kHz mono clip -> float32 [192]. Raises CodecInputError naming `audio` for
        a clip shorter than MIN_CLIP_SAMPLES, or empty, non-1-D or non-finite."""
        return self.xvector_16k(resample_24k_to_16k(clip24k))

    def xvector_16k(self, r16: torch.Tensor) -> np.ndarray:
        """The same from the clip already resampled by `resample_24k_to_16k` ([1, L])."""
        feats = campplus_fbank(r16)
        with torch.inference_mode():
            out = self.network(feats[None].to(self.device))
        return out[0].to(device="cpu", dtype=torch.float32).numpy()


def meta_campplus() -> CAMPPlusNetwork:
    with torch.device("meta"):
        return CAMPPlusNetwork()


def campplus_shapes() -> dict[str, tuple[int, ...]]:
    """Checkpoint key (with the `speaker_encoder.` prefix) -> shape, BatchNorm buffers included."""
    return {PREFIX + k: tuple(v.shape) for k, v in meta_campplus().state_dict().items()}


def load_campplus(path: str | Path, device: str | torch.device = "cpu") -> CampPlus:
    """CAMPPlus from the `speaker_encoder.*` tensors of `s3gen.safetensors` (the rest is ignored),
    float32, eval mode. The BatchNorm counters (`num_batches_tracked`) are optional, as inference
    never reads them; any other missing or misshapen tensor raises CheckpointError naming it."""
    network = meta_campplus()
    expected = network.state_dict()
    state: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    misshapen: list[str] = []
    with safe_open(str(path), framework="pt", device="cpu") as f:
        available = set(f.keys())
        for name, ref in expected.items():
            key = PREFIX + name
            if key not in available:
                if name.endswith("num_batches_tracked"):
                    state[name] = torch.zeros((), dtype=torch.int64)
                else:
                    missing.append(key)
                continue
            found = tuple(f.get_slice(key).get_shape())
            if found != tuple(ref.shape):
                misshapen.append(f"{key}: expected {tuple(ref.shape)}, found {found}")
                continue
            # A fresh copy: tensors read from the file sit at offsets its header decides, and the
            # CPU kernels' rounding depends on alignment; this keeps the x-vector file-independent.
            state[name] = f.get_tensor(key).to(ref.dtype, copy=True)
    check_found("CAMPPlus speaker encoder", path, missing, misshapen)
    network.load_state_dict(state, strict=True, assign=True)
    return CampPlus(network.to(device).eval().requires_grad_(False))
