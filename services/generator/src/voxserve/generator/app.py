"""Builds and runs the generator service: one vLLM async engine per process."""

from __future__ import annotations

import os

import grpc

from voxserve.common.logging import configure_logging, get_logger
from voxserve.common.server import ServiceSpec, listen_credentials, serve
from voxserve.families.pack import resolve_pack
from voxserve.generator import metrics
from voxserve.generator.config import GeneratorConfig, VllmEnvironment
from voxserve.generator.servicer import GeneratorServicer
from voxserve.generator.source_builders import token_source_builder
from voxserve.generator.token_source import TokenSource
from voxserve.v1 import generator_pb2, generator_pb2_grpc

log = get_logger(__name__)


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


def prepare_vllm_environment(config: GeneratorConfig) -> VllmEnvironment:
    """Sets the variables vLLM reads (`GeneratorConfig.vllm_defaults`, `.vllm_environment`) in
    this process, whose environment the workers it spawns inherit."""
    for name, value in config.vllm_defaults.items():
        os.environ.setdefault(name, value)
    vllm = config.vllm_environment(_on_cpu())
    os.environ.update(vllm.settings)
    return vllm


def build_engine(config: GeneratorConfig) -> TokenSource:
    vllm = prepare_vllm_environment(config)
    pack = resolve_pack(config.pack)
    return token_source_builder(pack.family)(config, vllm, pack)


async def run(config: GeneratorConfig) -> None:
    configure_logging("generator", config.log_level)
    listen_credentials(config)  # a bad TLS setting stops the service before its model loads
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
        generator.shutdown()

    spec = ServiceSpec(
        name="generator",
        register=register,
        service_names=[generator_pb2.DESCRIPTOR.services_by_name["Generator"].full_name],
        on_stop=shutdown,
    )
    await serve(spec, config)
