"""Generator settings: environment variables `VOXSERVE_GENERATOR_*`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from voxserve.common.config import ServiceConfig, load_config, setting

PREFIX = "VOXSERVE_GENERATOR_"


@dataclass(frozen=True)
class GeneratorConfig(ServiceConfig):
    PREFIX: ClassVar[str] = PREFIX

    pack: Path | None = setting(None, "Model pack directory; empty means the embedded default pack")
    port: int = setting(50052, "gRPC port")
    metrics_port: int = setting(9102, "Prometheus metrics port; 0 disables")
    max_text_chars: int = setting(2000, "Longest text accepted per request, in characters")
    max_tokens: int = setting(3000, "Most semantic tokens per request (the default and the limit)")
    max_model_len: int = setting(4096, "vLLM max_model_len: prompt plus generated tokens")
    max_num_seqs: int = setting(64, "vLLM max_num_seqs: requests batched per engine step")
    max_streams: int = setting(
        256, "Most Generate calls at once (running or queued in vLLM); beyond it RESOURCE_EXHAUSTED"
    )
    dtype: str = setting("auto", "vLLM dtype: auto, float32, bfloat16 or float16")
    kv_cache_gib: int = setting(1, "KV cache size in GiB on CPU (VLLM_CPU_KVCACHE_SPACE)")
    gpu_memory_utilization: float = setting(0.5, "Fraction of GPU memory vLLM may use (CUDA only)")
    executor: str = setting(
        "auto",
        "Where the model runs: inproc (inside vLLM's engine-core process; on CPU this saves the "
        "worker process's busy polling), mp (a worker process per device) or auto (inproc on CPU, "
        "mp on GPU)",
    )
    cpu_threads: int = setting(
        1,
        "Threads the model uses on a CPU host (OMP_NUM_THREADS of vLLM's engine process); 0 keeps "
        "vLLM's default of one bound thread per core. One leaves cores to the vocoder and gateway "
        "when the stack shares a small machine",
    )
    enforce_eager: bool = setting(False, "Disable CUDA graphs / compilation (faster start, slower steps)")


def load(**overrides: Any) -> GeneratorConfig:
    return load_config(GeneratorConfig, PREFIX, **overrides)
