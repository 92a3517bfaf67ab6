"""Vocoder settings: environment variables `VOXSERVE_VOCODER_*`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from voxserve.common.config import ConfigError, ServiceConfig, load_config, setting

PREFIX = "VOXSERVE_VOCODER_"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Settings where 0 means "the default" (or "torch's own"), and settings that need at least one.
_ZERO_PICKS_DEFAULT = (
    "first_chunk_tokens",
    "max_chunk_tokens",
    "context_tokens",
    "max_batch_tokens",
    "torch_threads",
    "cpu_decode_lanes",
)
_AT_LEAST_ONE = ("max_stream_tokens", "max_streams", "max_batch_size", "max_encodes")
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """Cores this process may use: its CPU affinity, capped by its cgroup's CPU quota (a container
    limited to 2 CPUs on a 64-core node sees all 64 in its affinity)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to read: the affinity stands
    return cores


@dataclass(frozen=True)
class VocoderConfig(ServiceConfig):
    PREFIX: ClassVar[str] = PREFIX

    pack: Path | None = setting(None, "Model pack directory; empty means the embedded default pack")
    port: int = setting(50053, "gRPC port")
    metrics_port: int = setting(9103, "Prometheus metrics port; 0 disables")
    device: str = setting("cpu", "Torch device for decoding, e.g. cpu or cuda:0")
    dtype: str = setting(
        "float32",
        "Decode dtype: float32 (default), float16 or bfloat16: reduced precision is an option, its "
        "error against float32 is in DEVELOPERS.md",
    )
    first_chunk_tokens: int = setting(
        0,
        "Tokens in a stream's first chunk, and in every chunk while the device is idle; 0 picks by "
        "the pack's family: spark 10 (200 ms), s3 and chatterbox 10 (400 ms), orpheus 2 frames (171 ms)",
    )
    max_chunk_tokens: int = setting(
        0,
        "Largest chunk: chunks grow toward it (first x 2^k) as the device gets busy, never beyond "
        "the audio the client still holds; 0 picks by the pack's family: spark, s3 and chatterbox 80, "
        "orpheus 12",
    )
    context_tokens: int = setting(
        0,
        "BiCodec: left context and lookahead in tokens, 0 measures the receptive field at start-up; "
        "S3Gen: the flow's left context in tokens, 0 means 25 (its lookahead is the model's 3); "
        "SNAC: context on both sides in frames, 0 means the decoder's measured reach",
    )
    context_tolerance: float = setting(
        5e-5,
        "Largest sample difference between streamed and offline decode when measuring context; "
        "twice it bounds the difference between any two chunkings of a stream (batched or alone)",
    )
    max_stream_tokens: int = setting(
        90000,
        "Most tokens one Decode stream may carry (90000 = 30 minutes of BiCodec, 60 of S3Gen, "
        "128 of SNAC frames)",
    )
    max_streams: int = setting(
        128, "Most Decode streams at once; a stream beyond it is refused with RESOURCE_EXHAUSTED"
    )
    max_batch_size: int = setting(32, "Most windows decoded in one forward")
    max_batch_tokens: int = setting(
        0,
        "Most tokens (rows x window length, context included) in one forward; 0 picks by device: "
        "512 on CPU (a forward's time grows with its tokens there, so big batches only delay "
        "urgent streams), 16384 on a GPU",
    )
    first_audio_priority_seconds: float = setting(
        2.0,
        "A stream with no audio out yet is scheduled as if due this long before it arrived: ahead "
        "of streams with audio, unless their clients have starved for longer",
    )
    max_encodes: int = setting(
        1,
        "Most EncodeVoice calls encoding at once (each runs the pack's encoders in a worker "
        "thread, beside decoding); beyond it RESOURCE_EXHAUSTED",
    )
    max_encode_seconds: float = setting(120.0, "Longest reference audio EncodeVoice accepts, in seconds")
    batching: bool = setting(True, "Batch decode work across streams (false: batch size 1)")
    tf32: bool = setting(
        False,
        "On a CUDA device, let float32 matmuls and convolutions use TensorFloat-32 (faster, about "
        "three decimal digits); no effect on a CPU",
    )
    cuda_graphs: bool = setting(
        True,
        "On a CUDA device, capture BiCodec and SNAC forwards as CUDA graphs at start-up, one per "
        "(batch bucket 1, 2, 4, .. rows, window length) of the chunk ladder, and replay them (rows "
        "padded to the bucket, padding discarded); other shapes, S3Gen and CPU devices run eagerly",
    )
    torch_threads: int = setting(
        1,
        "Intra-op threads for torch on CPU; 0 leaves torch's default (one per core). One keeps a "
        "forward from stalling on threads that share cores with the event loop and other services",
    )
    cpu_decode_lanes: int = setting(
        0,
        "On a CPU device, run this many decode forwards at once, one thread each (a lane per group of "
        "torch_threads cores); 0 means the cores this process may use "
        "(affinity and cgroup quota) divided by torch_threads (1 when torch_threads is 0); no effect "
        "on a GPU",
    )

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def decode_lanes(self) -> int:
        """Decode forwards at once on a CPU device: the setting, or what the cores allow."""
        if self.cpu_decode_lanes:
            return self.cpu_decode_lanes
        if self.torch_threads == 0:
            return 1  # torch's own threads already take every core
        return max(1, available_cores() // self.torch_threads)

    def check(self) -> None:
        super().check()
        if self.dtype not in DTYPES:
            raise ConfigError(f"{self.name('dtype')}={self.dtype!r}: expected one of {', '.join(DTYPES)}")
        for field_name in _ZERO_PICKS_DEFAULT:
            if getattr(self, field_name) < 0:
                raise ConfigError(f"{self.name(field_name)}={getattr(self, field_name)}: must be >= 0")
        for field_name in _AT_LEAST_ONE:
            if getattr(self, field_name) < 1:
                raise ConfigError(f"{self.name(field_name)}={getattr(self, field_name)}: must be >= 1")
        if (
            self.first_chunk_tokens
            and self.max_chunk_tokens
            and self.first_chunk_tokens > self.max_chunk_tokens
        ):
            raise ConfigError(
                f"{self.name('first_chunk_tokens')}={self.first_chunk_tokens}: must be <= "
                f"{self.name('max_chunk_tokens')}={self.max_chunk_tokens}"
            )
        if not self.max_encode_seconds > 0:
            raise ConfigError(f"{self.name('max_encode_seconds')}={self.max_encode_seconds}: must be > 0")
        if not self.context_tolerance > 0:
            raise ConfigError(f"{self.name('context_tolerance')}={self.context_tolerance}: must be > 0")


def load(**overrides: Any) -> VocoderConfig:
    return load_config(VocoderConfig, PREFIX, **overrides)
