"""Every call's final status is counted by method, through a real grpc.aio server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from voxserve.common.call_metrics import CALLS
from voxserve.common.request_id import RequestIdInterceptor

SERVICE = "test.Status"


def _identity(data: bytes) -> bytes:
    return data


async def ok(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def invalid(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad field")
    raise AssertionError("unreachable")


async def slow(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield b"first"
    await asyncio.sleep(30)


async def broken(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise RuntimeError("a bug")


@pytest.fixture
async def address() -> AsyncIterator[str]:
    server = grpc.aio.server(interceptors=[RequestIdInterceptor()])
    handlers: dict[str, Any] = {
        name: grpc.unary_unary_rpc_method_handler(fn, _identity, _identity)
        for name, fn in (("Ok", ok), ("Invalid", invalid), ("Broken", broken))
    }
    handlers["Slow"] = grpc.unary_stream_rpc_method_handler(slow, _identity, _identity)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


def count(method: str, code: str) -> float:
    return CALLS.labels(f"/{SERVICE}/{method}", code)._value.get()


async def until_counted(method: str, code: str, expected: float) -> None:
    for _ in range(200):
        if count(method, code) >= expected:
            return
        await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    ("method", "code"), [("Ok", "OK"), ("Invalid", "INVALID_ARGUMENT"), ("Broken", "UNKNOWN")]
)
async def test_final_status_is_counted(address: str, method: str, code: str) -> None:
    before = count(method, code)
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary(f"/{SERVICE}/{method}")
        try:
            await call(b"x", timeout=10)
        except grpc.aio.AioRpcError as exc:
            assert exc.code().name == code
    await until_counted(method, code, before + 1)
    assert count(method, code) == before + 1


async def test_a_cancelled_call_is_counted_as_cancelled(address: str) -> None:
    before = count("Slow", "CANCELLED")
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_stream(f"/{SERVICE}/Slow")(b"x", timeout=10)
        assert await call.read() == b"first"
        call.cancel()
    await until_counted("Slow", "CANCELLED", before + 1)
    assert count("Slow", "CANCELLED") == before + 1
