"""Builds and runs the gateway service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from voxserve.common.logging import configure_logging
from voxserve.common.server import MAX_MESSAGE_BYTES, ServiceSpec, serve
from voxserve.gateway.config import GatewayConfig
from voxserve.gateway.pipeline import remote_runner
from voxserve.gateway.servicer import SpeechServicer
from voxserve.gateway.voices import VoiceRegistry
from voxserve.v1 import generator_pb2_grpc, speech_pb2, speech_pb2_grpc, vocoder_pb2_grpc

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.lb_policy_name", "round_robin"),
]


async def run(config: GatewayConfig) -> None:
    configure_logging("gateway", config.log_level)
    voices = VoiceRegistry.from_file(config.voices_file) if config.voices_file else VoiceRegistry.builtin()
    generator_channel = grpc.aio.insecure_channel(config.generator_address, options=CHANNEL_OPTIONS)
    vocoder_channel = grpc.aio.insecure_channel(config.vocoder_address, options=CHANNEL_OPTIONS)
    runner = remote_runner(
        generator_pb2_grpc.GeneratorStub(generator_channel), vocoder_pb2_grpc.VocoderStub(vocoder_channel)
    )
    servicer = SpeechServicer(voices, runner, config)

    async def close_channels() -> None:
        await generator_channel.close()
        await vocoder_channel.close()

    await serve(speech_service(servicer, on_stop=close_channels), config)


def speech_service(
    servicer: SpeechServicer, *, name: str = "gateway", on_stop: Callable[[], Awaitable[None]] | None = None
) -> ServiceSpec:
    """The public Speech API as a service for `serve`."""

    def register(server: grpc.aio.Server) -> None:
        speech_pb2_grpc.add_SpeechServicer_to_server(servicer, server)

    return ServiceSpec(
        name=name,
        register=register,
        service_names=[speech_pb2.DESCRIPTOR.services_by_name["Speech"].full_name],
        on_stop=on_stop,
    )
