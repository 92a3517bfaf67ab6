"""Builds and runs the vocoder service from its config."""

from __future__ import annotations

import asyncio

import grpc
import torch

from voxserve.common.logging import configure_logging, get_logger
from voxserve.common.server import ServiceSpec, serve
from voxserve.packs.pack import resolve_pack
from voxserve.v1 import vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.config import VocoderConfig
from voxserve.vocoder.load_meter import HostCpuLoad
from voxserve.vocoder.receptive_field import measure_context
from voxserve.vocoder.scheduler import Scheduler, SchedulerLimits
from voxserve.vocoder.servicer import VocoderServicer
from voxserve.vocoder.stream import ChunkPolicy

log = get_logger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def build_codec(config: VocoderConfig) -> BiCodec:
    if config.dtype not in DTYPES:
        raise ValueError(f"VOXSERVE_VOCODER_DTYPE={config.dtype!r}: expected one of {', '.join(DTYPES)}")
    pack = resolve_pack(config.pack)
    return BiCodec.from_pack(pack.root, device=config.device, dtype=DTYPES[config.dtype])


def chunk_policy(config: VocoderConfig, codec: BiCodec) -> ChunkPolicy:
    context = config.context_tokens
    if context <= 0:
        measured = measure_context(codec, config.context_tolerance)
        context = measured.context_tokens
        log.info(
            "measured decode context",
            context_tokens=context,
            tolerance=config.context_tolerance,
            receptive_field_tokens=codec.receptive_field_tokens,
        )
    return ChunkPolicy(
        first_chunk_tokens=config.first_chunk_tokens,
        max_chunk_tokens=config.max_chunk_tokens,
        left_context_tokens=context,
        lookahead_tokens=context,
    )


AUTO_BATCH_TOKENS = {"cpu": 512, "gpu": 16384}


def scheduler_limits(config: VocoderConfig, policy: ChunkPolicy) -> SchedulerLimits:
    batch_tokens = config.max_batch_tokens
    if batch_tokens <= 0:
        batch_tokens = AUTO_BATCH_TOKENS["cpu" if torch.device(config.device).type == "cpu" else "gpu"]
        # Always room for one window of the longest kind.
        batch_tokens = max(batch_tokens, policy.longest_window)
    return SchedulerLimits(
        max_streams=config.max_streams,
        max_batch_size=config.max_batch_size,
        max_batch_tokens=batch_tokens,
        first_audio_priority_seconds=config.first_audio_priority_seconds,
    )


async def run(config: VocoderConfig) -> None:
    configure_logging("vocoder", config.log_level)
    if config.torch_threads > 0:
        torch.set_num_threads(config.torch_threads)
    codec = await asyncio.to_thread(build_codec, config)
    policy = chunk_policy(config, codec)
    on_cpu = torch.device(config.device).type == "cpu"
    scheduler = Scheduler(
        codec,
        policy,
        scheduler_limits(config, policy),
        batching=config.batching,
        host_load=HostCpuLoad() if on_cpu else None,
    )
    scheduler.start()
    servicer = VocoderServicer(codec, scheduler, max_stream_tokens=config.max_stream_tokens)

    def register(server: grpc.aio.Server) -> None:
        vocoder_pb2_grpc.add_VocoderServicer_to_server(servicer, server)

    spec = ServiceSpec(
        name="vocoder",
        register=register,
        service_names=[vocoder_pb2.DESCRIPTOR.services_by_name["Vocoder"].full_name],
        on_stop=scheduler.stop,
    )
    await serve(spec, config)
