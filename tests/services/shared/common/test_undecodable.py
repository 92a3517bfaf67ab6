"""Request bytes that are not a valid message get INVALID_ARGUMENT naming the type, not UNKNOWN."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from voxserve.common.request_id import RequestIdInterceptor
from voxserve.common.status import InvalidArgument
from voxserve.v1 import speech_pb2

SERVICE = "test.Parse"
GARBAGE = b"\xff\xff\xff"


async def unary(request: speech_pb2.SynthesizeRequest, context: grpc.aio.ServicerContext) -> bytes:
    return request.text.encode()


async def streaming(
    requests: AsyncIterator[speech_pb2.SynthesizeRequest], context: grpc.aio.ServicerContext
) -> AsyncIterator[bytes]:
    try:
        async for request in requests:
            yield request.text.encode()
    except InvalidArgument as exc:  # as the services do for any bad message
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))


@pytest.fixture
async def address() -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=[RequestIdInterceptor()])
    parse, send = speech_pb2.SynthesizeRequest.FromString, bytes
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, parse, send),
        "Stream": grpc.stream_stream_rpc_method_handler(streaming, parse, send),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def test_undecodable_unary_request(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(f"/{SERVICE}/Unary")
        assert await call(speech_pb2.SynthesizeRequest(text="ok").SerializeToString()) == b"ok"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call(GARBAGE, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid voxserve.v1.SynthesizeRequest message" in (info.value.details() or "")


async def test_undecodable_message_in_a_stream(address: str) -> None:
    good = speech_pb2.SynthesizeRequest(text="first").SerializeToString()
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.stream_stream(f"/{SERVICE}/Stream")(iter([good, GARBAGE]), timeout=10)
        assert await call.read() == b"first"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid voxserve.v1.SynthesizeRequest message" in (info.value.details() or "")
