"""Builds and runs the vocoder service from its config."""

from __future__ import annotations

import asyncio

import grpc
import torch

from voxserve.common.logging import configure_logging, get_logger
from voxserve.common.server import ServiceSpec, listen_credentials, serve
from voxserve.families.pack import resolve_pack
from voxserve.v1 import vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder.codecs.base import Codec
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.codecs.s3gen.codec import S3GenCodec
from voxserve.vocoder.codecs.snac.codec import SnacCodec
from voxserve.vocoder.config import PREFIX, VocoderConfig
from voxserve.vocoder.load_meter import HostCpuLoad
from voxserve.vocoder.receptive_field import measure_context
from voxserve.vocoder.scheduler import Scheduler, SchedulerLimits
from voxserve.vocoder.servicer import VocoderServicer
from voxserve.vocoder.stream import ChunkPolicy

log = get_logger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def build_codec(config: VocoderConfig) -> Codec:
    """The codec of the configured pack's family."""
    if config.dtype not in DTYPES:
        raise ValueError(f"VOXSERVE_VOCODER_DTYPE={config.dtype!r}: expected one of {', '.join(DTYPES)}")
    pack = resolve_pack(config.pack)
    if pack.family.name in ("s3", "chatterbox"):
        return S3GenCodec.from_pack(pack.root, device=config.device, dtype=DTYPES[config.dtype])
    if pack.family.name == "orpheus":
        return SnacCodec.from_pack(pack.root, device=config.device, dtype=DTYPES[config.dtype])
    return BiCodec.from_pack(pack.root, device=config.device, dtype=DTYPES[config.dtype])


# First and largest chunk in tokens when the config leaves them 0: about 200 ms and 1.6 s of
# audio for BiCodec (20 ms tokens), 400 ms and 3.2 s for S3Gen (40 ms), 171 ms and 1 s for SNAC
# (85 ms Orpheus frames).
DEFAULT_CHUNK_TOKENS = {"bicodec": (10, 80), "s3gen": (10, 80), "snac": (2, 12)}


def chunk_policy(config: VocoderConfig, codec: Codec) -> ChunkPolicy:
    """Chunk sizes from the config or the codec's defaults; context from the config or the codec.

    BiCodec is stateless: its context on both sides is measured from the weights (or set). S3Gen
    carries its state across chunks; its lookahead is the flow's own, and its left context is
    the flow context of each window. SNAC is stateless too; its context on both sides is its
    decoder's reach, measured at load by changing one frame.
    """
    if isinstance(codec, SnacCodec):
        left = lookahead = config.context_tokens or codec.receptive_field_tokens
    elif isinstance(codec, S3GenCodec):
        left = config.context_tokens or codec.left_context_tokens
        lookahead = codec.lookahead_tokens
    elif isinstance(codec, BiCodec):
        left = config.context_tokens
        if left <= 0:
            measured = measure_context(codec, config.context_tolerance)
            left = measured.context_tokens
            log.info(
                "measured decode context",
                context_tokens=left,
                tolerance=config.context_tolerance,
                receptive_field_tokens=codec.receptive_field_tokens,
            )
        lookahead = left
    else:
        raise TypeError(f"no chunk policy for codec {codec.name!r}")
    first, largest = DEFAULT_CHUNK_TOKENS[codec.name]
    return ChunkPolicy(
        first_chunk_tokens=config.first_chunk_tokens or first,
        max_chunk_tokens=config.max_chunk_tokens or largest,
        left_context_tokens=left,
        lookahead_tokens=lookahead,
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
    listen_credentials(config, PREFIX)  # a bad TLS setting stops the service before its model loads
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
        settings_prefix=PREFIX,
    )
    await serve(spec, config)
