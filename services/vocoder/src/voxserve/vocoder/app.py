"""Builds and runs the vocoder service from its config."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import torch

from voxserve.common.logging import configure_logging, get_logger
from voxserve.common.server import ServiceSpec, listen_credentials, serve
from voxserve.families.family import Family
from voxserve.families.pack import resolve_pack
from voxserve.v1 import vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder.codecs.base import Codec
from voxserve.vocoder.codecs.registry import build_codec
from voxserve.vocoder.config import VocoderConfig
from voxserve.vocoder.device_decode import DeviceDecoder, capture_shapes
from voxserve.vocoder.load_meter import HostCpuLoad
from voxserve.vocoder.scheduler import Scheduler, SchedulerLimits
from voxserve.vocoder.servicer import VocoderServicer
from voxserve.vocoder.stream import ChunkPolicy
from voxserve.vocoder.voice_encoding import VoiceEncoding

log = get_logger(__name__)


def chunk_policy(config: VocoderConfig, codec: Codec, family: Family) -> ChunkPolicy:
    """Chunk sizes from the config or the pack family's defaults; context from the config or the
    codec."""
    context = codec.chunk_context(config.context_tokens, config.context_tolerance)
    return ChunkPolicy(
        first_chunk_tokens=config.first_chunk_tokens or family.first_chunk_tokens,
        max_chunk_tokens=config.max_chunk_tokens or family.max_chunk_tokens,
        left_context_tokens=context.left_tokens,
        lookahead_tokens=context.lookahead_tokens,
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
    listen_credentials(config)  # a bad TLS setting stops the service before its model loads
    if config.torch_threads > 0:
        torch.set_num_threads(config.torch_threads)
    # Process-wide switches of torch's CUDA backends; read only by CUDA kernels.
    torch.backends.cuda.matmul.allow_tf32 = config.tf32
    torch.backends.cudnn.allow_tf32 = config.tf32
    pack = resolve_pack(config.pack)
    codec = await asyncio.to_thread(build_codec, pack, device=config.device, dtype=config.torch_dtype)
    policy = chunk_policy(config, codec, pack.family)
    on_cpu = torch.device(config.device).type == "cpu"
    limits = scheduler_limits(config, policy)
    decoder = DeviceDecoder(codec, config.device, graphs=config.cuda_graphs, lanes=config.decode_lanes)
    scheduler = Scheduler(
        codec,
        policy,
        limits,
        batching=config.batching,
        host_load=HostCpuLoad() if on_cpu else None,
        decoder=decoder,
    )
    shapes = capture_shapes(policy, scheduler.max_batch_size, limits.max_batch_tokens)
    await asyncio.to_thread(decoder.warm_up, shapes)  # logs what it captured and its seconds
    warm_up_seconds = await asyncio.to_thread(scheduler.warm_up, codec.warmup_voice())
    coefficients = scheduler.cost.coefficients
    log.info(
        "warmed up",
        seconds=round(warm_up_seconds, 3),
        cost_model=None if coefficients is None else dataclasses.asdict(coefficients),
    )
    scheduler.start()
    encoding = VoiceEncoding(codec, max_encodes=config.max_encodes, max_seconds=config.max_encode_seconds)
    servicer = VocoderServicer(
        codec, scheduler, max_stream_tokens=config.max_stream_tokens, voice_encoding=encoding
    )

    def register(server: grpc.aio.Server) -> None:
        vocoder_pb2_grpc.add_VocoderServicer_to_server(servicer, server)

    spec = ServiceSpec(
        name="vocoder",
        register=register,
        service_names=[vocoder_pb2.DESCRIPTOR.services_by_name["Vocoder"].full_name],
        on_stop=scheduler.stop,
    )
    await serve(spec, config)
