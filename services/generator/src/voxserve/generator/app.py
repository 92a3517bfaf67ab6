"""Builds and runs the generator service: one vLLM async engine per process."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from voxserve.common.logging import configure_logging, get_logger
from voxserve.common.server import ServiceSpec, listen_credentials, serve
from voxserve.families.pack import Pack, resolve_pack
from voxserve.families.speakers import SpeakerSet
from voxserve.generator import metrics
from voxserve.generator.config import PREFIX, GeneratorConfig
from voxserve.generator.engine import TokenGenerator
from voxserve.generator.servicer import GeneratorServicer
from voxserve.generator.t3.config import CHECKPOINT_FILE as T3_CHECKPOINT
from voxserve.generator.t3.config import T3Config
from voxserve.generator.t3.generator import T3Generator
from voxserve.generator.token_table import GRAMMARS, TokenTable
from voxserve.v1 import generator_pb2, generator_pb2_grpc

log = get_logger(__name__)


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


VLLM_LOGGING_CONFIG = Path(__file__).with_name("vllm_logging.json")


EXECUTORS = ("auto", "inproc", "mp")


def executor_backend(config: GeneratorConfig, on_cpu: bool) -> str:
    if config.executor not in EXECUTORS:
        raise ValueError(
            f"VOXSERVE_GENERATOR_EXECUTOR={config.executor!r}: expected one of {', '.join(EXECUTORS)}"
        )
    if config.executor == "auto":
        return "uni" if on_cpu else "mp"
    return "uni" if config.executor == "inproc" else "mp"


def prepare_vllm_environment(config: GeneratorConfig) -> str:
    """vLLM reads these from the environment, in this process and in the workers it spawns.

    Returns the executor backend. With one worker process the engine core and the worker poll
    each other's shared-memory queues in a busy loop for a second after every message, which on
    a CPU host burns about a core; running the model inside the engine-core process
    ("uni") removes that queue. vLLM allows it on CPU only with V1 multiprocessing off, which
    for `AsyncLLM` still keeps the engine core in its own process.
    """
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(config.kv_cache_gib))
    os.environ.setdefault("VLLM_LOGGING_CONFIG_PATH", str(VLLM_LOGGING_CONFIG))
    on_cpu = _on_cpu()
    backend = executor_backend(config, on_cpu)
    if on_cpu and config.cpu_threads > 0:
        os.environ["OMP_NUM_THREADS"] = str(config.cpu_threads)
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = "nobind"
    if backend == "uni":
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    return backend


def engine_args(config: GeneratorConfig, backend: str, model: Path, **extra: Any) -> Any:
    from vllm.engine.arg_utils import AsyncEngineArgs

    return AsyncEngineArgs(
        model=str(model),
        dtype=config.dtype,  # type: ignore[arg-type]  # vLLM validates the name
        max_model_len=config.max_model_len,
        max_num_seqs=config.max_num_seqs,
        gpu_memory_utilization=config.gpu_memory_utilization,
        enforce_eager=config.enforce_eager,
        distributed_executor_backend=backend,
        disable_log_stats=False,
        seed=0,
        **extra,
    )


def build_t3_engine(config: GeneratorConfig, backend: str, pack: Pack) -> T3Generator:
    """Chatterbox: T3 in vLLM from the pack's `t3_cfg.safetensors` (see `t3.model`)."""
    from vllm.v1.engine.async_llm import AsyncLLM

    from voxserve.generator.t3.conditioning import T3Conditioner
    from voxserve.generator.t3.model_dir import t3_engine_options, write_model_dir
    from voxserve.generator.t3.text import T3Tokenizer
    from voxserve.generator.t3.voice import read_t3_voice

    started = time.monotonic()
    t3 = T3Config.of_pack(pack.root)
    checkpoint = pack.root / T3_CHECKPOINT
    # Reads only the tensors that build prompts, after checking every name and shape (before
    # vLLM starts, so a wrong checkpoint fails at once with the names that are wrong).
    conditioner = T3Conditioner.load(checkpoint, t3)
    default_voice = read_t3_voice(pack.root / "conds.pt")
    model_dir = write_model_dir(Path(tempfile.mkdtemp(prefix="voxserve-t3-")), checkpoint, t3)
    llm = AsyncLLM.from_engine_args(engine_args(config, backend, model_dir, **t3_engine_options()))
    log.info(
        "engine ready", pack=str(pack.root), family="chatterbox", seconds=round(time.monotonic() - started, 2)
    )
    return T3Generator(
        llm,
        conditioner,
        T3Tokenizer.from_file(pack.root / "tokenizer.json", t3),
        default_voice,
        t3,
        max_model_len=config.max_model_len,
        max_tokens=config.max_tokens,
    )


def build_engine(config: GeneratorConfig) -> TokenGenerator | T3Generator:
    backend = prepare_vllm_environment(config)
    pack = resolve_pack(config.pack)
    if pack.family.name == "chatterbox":
        return build_t3_engine(config, backend, pack)
    from transformers import AutoTokenizer
    from vllm.v1.engine.async_llm import AsyncLLM

    started = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(pack.llm_dir)
    table = TokenTable.from_tokenizer(tokenizer, grammar=GRAMMARS[pack.family.name])
    speakers = SpeakerSet.from_pack(pack.root)
    processors: dict[str, Any] = {}
    if pack.family.name == "orpheus":
        from voxserve.generator.frame_positions import FramePositions

        processors["logits_processors"] = [FramePositions]
    args = engine_args(config, backend, pack.llm_dir, **processors)
    llm = AsyncLLM.from_engine_args(args)
    log.info(
        "engine ready",
        pack=str(pack.root),
        family=pack.family.name,
        speakers=len(speakers.names) if speakers else 0,
        seconds=round(time.monotonic() - started, 2),
        cpu=_on_cpu(),
    )
    return TokenGenerator(
        llm,
        tokenizer,
        table,
        max_model_len=config.max_model_len,
        max_tokens=config.max_tokens,
        speakers=speakers,
    )


async def run(config: GeneratorConfig) -> None:
    configure_logging("generator", config.log_level)
    listen_credentials(config, PREFIX)  # a bad TLS setting stops the service before its model loads
    generator = build_engine(config)
    metrics.ENGINE_REQUESTS.set_function(lambda: generator.active_requests)
    servicer = GeneratorServicer(
        generator,
        max_text_chars=config.max_text_chars,
        max_tokens=config.max_tokens,
        max_streams=config.max_streams,
    )

    def register(server: grpc.aio.Server) -> None:
        generator_pb2_grpc.add_GeneratorServicer_to_server(servicer, server)

    async def shutdown() -> None:
        generator.llm.shutdown()

    spec = ServiceSpec(
        name="generator",
        register=register,
        service_names=[generator_pb2.DESCRIPTOR.services_by_name["Generator"].full_name],
        on_stop=shutdown,
        settings_prefix=PREFIX,
    )
    await serve(spec, config)
