"""Server reflection v1 (what grpcurl asks first) beside v1alpha: the same answers under both."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection_pb2

from voxserve.common.server import REFLECTION_V1_SERVICE, enable_reflection
from voxserve.v1 import generator_pb2, speech_pb2

SERVICES = [speech_pb2.DESCRIPTOR.services_by_name["Speech"].full_name, health.SERVICE_NAME]
V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server()
    enable_reflection(SERVICES, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel
    await server.stop(None)


async def ask(
    channel: grpc.aio.Channel, method: str, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    """One request on a reflection stream, as a raw call: v1's messages are v1alpha's on the wire."""
    call = channel.stream_stream(
        method,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    replies = [reply async for reply in call(iter([request]), timeout=10)]
    assert len(replies) == 1
    return replies[0]


def files(reply: reflection_pb2.ServerReflectionResponse) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    assert reply.HasField("file_descriptor_response"), reply
    protos = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in reply.file_descriptor_response.file_descriptor_proto
    ]
    return {proto.name: proto for proto in protos}


@pytest.mark.parametrize("method", [V1, V1ALPHA])
async def test_both_versions_list_the_services_and_both_reflection_services(
    channel: grpc.aio.Channel, method: str
) -> None:
    reply = await ask(channel, method, reflection_pb2.ServerReflectionRequest(list_services=""))
    listed = {service.name for service in reply.list_services_response.service}
    assert listed == {*SERVICES, REFLECTION_V1_SERVICE, "grpc.reflection.v1alpha.ServerReflection"}


async def test_v1_resolves_the_file_of_a_service_with_its_imports(channel: grpc.aio.Channel) -> None:
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="voxserve.v1.Speech")
    found = files(await ask(channel, V1, request))
    speech = found[speech_pb2.DESCRIPTOR.name]
    assert speech.package == "voxserve.v1"
    assert "Synthesize" in [method.name for method in speech.service[0].method]
    assert generator_pb2.DESCRIPTOR.name in found, "the files it imports come with it"


async def test_v1_describes_itself_in_its_own_package(channel: grpc.aio.Channel) -> None:
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=REFLECTION_V1_SERVICE)
    (proto,) = files(await ask(channel, V1, request)).values()
    assert (proto.name, proto.package) == ("grpc/reflection/v1/reflection.proto", "grpc.reflection.v1")
    (method,) = proto.service[0].method
    assert (method.input_type, method.output_type) == (
        ".grpc.reflection.v1.ServerReflectionRequest",
        ".grpc.reflection.v1.ServerReflectionResponse",
    )
    assert method.client_streaming and method.server_streaming


async def test_v1_reports_an_unknown_symbol_as_not_found(channel: grpc.aio.Channel) -> None:
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="voxserve.v1.Nothing")
    reply = await ask(channel, V1, request)
    assert reply.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
