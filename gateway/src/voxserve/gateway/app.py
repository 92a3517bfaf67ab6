"""Builds and runs the gateway service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import grpc

from voxserve.common import tls
from voxserve.common.auth import ApiKeys, api_key_interceptors
from voxserve.common.config import ConfigError
from voxserve.common.logging import configure_logging, get_logger
from voxserve.common.server import MAX_MESSAGE_BYTES, ServiceSpec, listen_credentials, serve, tls_mode
from voxserve.gateway.config import PREFIX, GatewayConfig
from voxserve.gateway.enrolment import VoiceEnrolment
from voxserve.gateway.http.api import Readiness, http_app
from voxserve.gateway.http.server import HttpServer
from voxserve.gateway.pipeline import Replicas, remote_runner
from voxserve.gateway.servicer import SpeechServicer
from voxserve.gateway.speech import SpeechCore
from voxserve.gateway.voice_directory import VoiceDirectory
from voxserve.gateway.voice_store import VoiceCache, VoiceStore, open_voice_store
from voxserve.gateway.voices import VoiceRegistry
from voxserve.v1 import generator_pb2_grpc, speech_pb2, speech_pb2_grpc, vocoder_pb2_grpc

log = get_logger(__name__)

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.lb_policy_name", "round_robin"),
]


def upstream_channels(config: GatewayConfig) -> Callable[[str], grpc.aio.Channel]:
    """Opens a channel to an upstream (generator or vocoder): plaintext, or TLS when
    `upstream_tls_ca_file` is set (with a client certificate for mutual TLS when configured).
    The credential files are read here, once, before any channel opens."""
    credentials = config.upstream_credentials()
    if credentials is None:
        return lambda address: grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    options = [*CHANNEL_OPTIONS, *tls.channel_options(config.upstream_tls_server_name)]
    return lambda address: grpc.aio.secure_channel(address, credentials, options=options)


def addresses(setting: str) -> list[str]:
    """A comma-separated list of replica addresses (one may be a `dns:///name` target that
    resolves to several, balanced per call by round_robin)."""
    return [part.strip() for part in setting.split(",") if part.strip()]


def api_keys(config: GatewayConfig) -> ApiKeys:
    return ApiKeys.load(config.api_keys, config.api_keys_file, file_setting=f"{PREFIX}API_KEYS_FILE")


def interceptors(config: GatewayConfig) -> list[grpc.aio.ServerInterceptor]:
    """The API-key check when keys are configured (none: the API is open)."""
    return api_key_interceptors(api_keys(config), open_probes=config.auth_open_probes)


async def open_store(config: GatewayConfig) -> VoiceStore:
    """The voice store, migrated; a store that cannot be opened stops the gateway with a message
    naming the setting (never the URL's password)."""
    try:
        store = open_voice_store(config.voice_store)
        await store.open()
    except Exception as exc:
        raise ConfigError(f"{PREFIX}VOICE_STORE: the voice store cannot be opened: {exc}") from exc
    return store


async def run(config: GatewayConfig) -> None:
    configure_logging("gateway", config.log_level)
    # Security settings are checked before anything else starts.
    listen_credentials(config)
    checks = interceptors(config)
    channel = upstream_channels(config)
    registry = VoiceRegistry.from_file(config.voices_file) if config.voices_file else VoiceRegistry.builtin()
    store = await open_store(config)
    stored = VoiceCache(store, check_seconds=config.voice_cache_seconds)
    await stored.start()
    log.info("voice store open", store=store.description)
    generator_channels = [channel(a) for a in addresses(config.generator_address)]
    vocoder_channels = [channel(a) for a in addresses(config.vocoder_address)]
    vocoders = [vocoder_pb2_grpc.VocoderStub(c) for c in vocoder_channels]
    runner = remote_runner([generator_pb2_grpc.GeneratorStub(c) for c in generator_channels], vocoders)
    voices = VoiceDirectory(registry, stored)
    keys = api_keys(config)
    core = SpeechCore(voices, runner, config)
    enrolment = VoiceEnrolment(voices, Replicas(vocoders), config)
    servicer = SpeechServicer(voices, runner, config, enrolment=enrolment, keyed=len(keys) > 0, core=core)

    async def close() -> None:
        for open_channel in (*generator_channels, *vocoder_channels):
            await open_channel.close()
        await stored.stop()
        await store.close()

    spec = speech_service(servicer, on_stop=close, interceptors=checks)
    if config.http_port:
        readiness = Readiness()
        http = HttpServer(
            http_app(core, enrolment, config, keys, readiness),
            config.host,
            config.http_port,
            grace_seconds=config.grace_seconds,
            setting=f"{PREFIX}HTTP_PORT",
            cert_file=config.tls_cert_file,
            key_file=config.tls_key_file,
            client_ca_file=config.tls_client_ca_file,
        )

        async def serving() -> None:
            await http.start()
            readiness.ready = True
            log.info("serving HTTP", address=f"{config.host}:{http.port}", tls=tls_mode(config))

        async def draining() -> None:
            readiness.draining = True
            await http.stop()

        spec.on_serving, spec.on_draining = serving, draining

    await serve(spec, config)


def speech_service(
    servicer: SpeechServicer,
    *,
    name: str = "gateway",
    on_stop: Callable[[], Awaitable[None]] | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> ServiceSpec:
    """The public Speech API as a service for `serve` (its settings are the gateway's)."""

    def register(server: grpc.aio.Server) -> None:
        speech_pb2_grpc.add_SpeechServicer_to_server(servicer, server)

    return ServiceSpec(
        name=name,
        register=register,
        service_names=[speech_pb2.DESCRIPTOR.services_by_name["Speech"].full_name],
        on_stop=on_stop,
        interceptors=interceptors,
    )
