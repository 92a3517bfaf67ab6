"""Server bootstrap shared by the three services.

grpc.aio server with the request-id interceptor (then the service's own, e.g. API keys), the
standard health service (SERVING once ready, NOT_SERVING as soon as a stop begins), server
reflection so grpcurl can see every service, a listener that is plaintext, TLS or mutual TLS
by the config's certificate settings, a Prometheus metrics endpoint, and a graceful stop on
SIGTERM/SIGINT: in-flight calls get `grace` seconds to finish while new ones are refused.
"""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import prometheus_client
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from voxserve.common.config import ServiceConfig
from voxserve.common.logging import get_logger
from voxserve.common.request_id import RequestIdInterceptor
from voxserve.common.tls import server_credentials

log = get_logger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Clients balance over `dns:///` targets (several replicas behind one name) and resolve the name
# again only when a connection closes. Closing each connection after this long (calls on it run
# to their end: no grace limit) makes clients find replicas added since.
MAX_CONNECTION_AGE_MS = 300_000


@dataclass
class ServiceSpec:
    """What a service plugs into the shared bootstrap."""

    name: str
    register: Callable[[grpc.aio.Server], None]
    service_names: Sequence[str]
    on_stop: Callable[[], Awaitable[None]] | None = None
    # Another listener of the same process (the gateway's HTTP API): started once the gRPC server
    # runs and before health reports SERVING; drained beside it on a stop, with the same grace.
    on_serving: Callable[[], Coroutine[Any, Any, None]] | None = None
    on_draining: Callable[[], Coroutine[Any, Any, None]] | None = None
    # Run after the request-id interceptor, in order (so their log lines carry the request id).
    interceptors: Sequence[grpc.aio.ServerInterceptor] = ()


def listen_credentials(config: ServiceConfig) -> grpc.ServerCredentials | None:
    """The listener's TLS credentials (None: plaintext); a bad setting raises ConfigError naming
    its variable (the config's own prefix).

    `serve` calls it before binding; a service with a slow start (an engine to load) calls it
    first too, so that a bad setting stops it at once."""
    return server_credentials(
        config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file, prefix=config.PREFIX
    )


def tls_mode(config: ServiceConfig) -> str:
    if config.tls_cert_file is None:
        return "off"
    return "mutual" if config.tls_client_ca_file is not None else "on"


# Server reflection comes in two versions: v1, which recent clients ask for first, and v1alpha,
# which older ones (and the grpcurl of the dev extra) know. grpcio-reflection implements v1alpha
# only, but the two protocols differ in nothing but their package name (same messages, same
# field numbers), so the v1alpha servicer answers v1 calls too, with the v1alpha message classes
# on the wire.
REFLECTION_V1_SERVICE = "grpc.reflection.v1.ServerReflection"
REFLECTION_SERVICES = (REFLECTION_V1_SERVICE, reflection.SERVICE_NAME)


def enable_reflection(service_names: Sequence[str], server: grpc.aio.Server) -> None:
    """Serve reflection v1 and v1alpha, listing `service_names` and both reflection services."""
    _register_reflection_v1_descriptor()
    servicer = reflection.aio.ReflectionServicer([*service_names, *REFLECTION_SERVICES])
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    info = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(REFLECTION_V1_SERVICE, {"ServerReflectionInfo": info}),)
    )


@functools.cache
def _register_reflection_v1_descriptor() -> None:
    """Put grpc/reflection/v1/reflection.proto in the default descriptor pool, so that reflection
    describes the v1 service it lists (`grpcurl describe` resolves every listed service)."""
    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(REFLECTION_V1_SERVICE)
        return  # a library that ships the v1 module registered it already
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    alpha, v1 = proto.package, REFLECTION_V1_SERVICE.rpartition(".")[0]
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = v1
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    proto.options.ClearField("deprecated")
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # a message field (setting it marks any field one)
                field.type_name = field.type_name.replace(f".{alpha}.", f".{v1}.")
    for method in proto.service[0].method:
        method.input_type = method.input_type.replace(f".{alpha}.", f".{v1}.")
        method.output_type = method.output_type.replace(f".{alpha}.", f".{v1}.")
    pool.AddSerializedFile(proto.SerializeToString())


async def serve(spec: ServiceSpec, config: ServiceConfig) -> None:
    """Run a service until SIGTERM/SIGINT, then stop gracefully."""
    # Checked before anything starts: a bad certificate setting stops the service with its name.
    credentials = listen_credentials(config)
    server = grpc.aio.server(
        interceptors=[RequestIdInterceptor(), *spec.interceptors],
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
        ],
    )
    spec.register(server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_names = ["", *spec.service_names]
    enable_reflection([*spec.service_names, health.SERVICE_NAME], server)

    address = f"{config.host}:{config.port}"
    if credentials is None:
        bound = server.add_insecure_port(address)
    else:
        bound = server.add_secure_port(address, credentials)
    if bound == 0:
        raise OSError(f"cannot bind {address}")
    if config.metrics_port > 0:
        prometheus_client.start_http_server(config.metrics_port, addr=config.host)

    await server.start()
    if spec.on_serving is not None:
        try:
            await spec.on_serving()
        except BaseException:
            await server.stop(None)
            raise
    for name in health_names:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "serving",
        service=spec.name,
        address=f"{config.host}:{bound}",
        metrics_port=config.metrics_port,
        tls=tls_mode(config),
        interceptors=[type(i).__name__ for i in spec.interceptors],
    )

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    await stopping.wait()
    log.info("stopping", service=spec.name, grace_seconds=config.grace_seconds)
    for name in health_names:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    draining = asyncio.create_task(spec.on_draining()) if spec.on_draining is not None else None
    await server.stop(config.grace_seconds)
    if draining is not None:
        await draining
    if spec.on_stop is not None:
        await spec.on_stop()
    log.info("stopped", service=spec.name)
