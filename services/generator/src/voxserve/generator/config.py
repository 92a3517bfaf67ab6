"""Generator settings: environment variables `VOXSERVE_GENERATOR_*`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from voxserve.common.config import ConfigError, ServiceConfig, load_config, setting

PREFIX = "VOXSERVE_GENERATOR_"
EXECUTORS = ("auto", "inproc", "mp")
VLLM_LOGGING_CONFIG = Path(__file__).with_name("vllm_logging.json")


@dataclass(frozen=True)
class VllmEnvironment:
    """The host's side of vLLM's set-up: the executor backend, and the variables set for it
    whatever the environment holds (vLLM reads them in this process and the workers it spawns)."""

    on_cpu: bool
    backend: str
    settings: Mapping[str, str]


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

    def check(self) -> None:
        super().check()
        if self.executor not in EXECUTORS:
            raise ConfigError(
                f"{self.name('executor')}={self.executor!r}: expected one of {', '.join(EXECUTORS)}"
            )

    def executor_backend(self, on_cpu: bool) -> str:
        """vLLM's distributed executor backend: "uni" runs the model in the engine-core process."""
        if self.executor == "auto":
            return "uni" if on_cpu else "mp"
        return "uni" if self.executor == "inproc" else "mp"

    @property
    def vllm_defaults(self) -> Mapping[str, str]:
        """vLLM's variables an operator's environment may override. vLLM reads its logging
        configuration when first imported, so these are set before that."""
        return {
            "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib),
            "VLLM_LOGGING_CONFIG_PATH": str(VLLM_LOGGING_CONFIG),
        }

    def vllm_environment(self, on_cpu: bool) -> VllmEnvironment:
        """With one worker process the engine core and the worker poll each other's shared-memory
        queues in a busy loop for a second after every message, which on a CPU host burns about a
        core; running the model inside the engine-core process ("uni") removes that queue. vLLM
        allows it on CPU only with V1 multiprocessing off, which for `AsyncLLM` still keeps the
        engine core in its own process."""
        backend = self.executor_backend(on_cpu)
        settings: dict[str, str] = {}
        if on_cpu and self.cpu_threads > 0:
            settings["OMP_NUM_THREADS"] = str(self.cpu_threads)
            settings["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
        if backend == "uni":
            settings["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        return VllmEnvironment(on_cpu, backend, settings)


def load(**overrides: Any) -> GeneratorConfig:
    return load_config(GeneratorConfig, PREFIX, **overrides)
