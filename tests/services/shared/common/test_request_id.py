"""`RequestIdInterceptor` against a real grpc.aio server with a tiny generic service."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import structlog

from voxserve.common.request_id import (
    METADATA_KEY,
    RequestIdInterceptor,
    current_request_id,
    new_request_id,
    outgoing_metadata,
)

SERVICE = "test.Echo"
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def _seen() -> bytes:
    return json.dumps(
        {
            "rid": current_request_id(),
            "outgoing": [list(kv) for kv in outgoing_metadata()],
            "log": structlog.contextvars.get_contextvars().get("request_id"),
        }
    ).encode()


class _Barrier:
    """Lets the 'Meet' method hold each call until `parties` calls are inside the handler."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.all_in = asyncio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), timeout=10)


class Echo:
    def __init__(self) -> None:
        self.barrier = _Barrier(2)

    async def unary(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return _seen()

    async def meet(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await self.barrier.wait()
        return _seen()

    async def stream(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        yield _seen()
        await asyncio.sleep(0)
        yield _seen()

    async def bidi(self, requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        async for _ in requests:
            yield _seen()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
                "Meet": grpc.unary_unary_rpc_method_handler(self.meet),
                "Stream": grpc.unary_stream_rpc_method_handler(self.stream),
                "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            },
        )


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[RequestIdInterceptor()])
    server.add_generic_rpc_handlers((Echo().handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            yield ch
    finally:
        await server.stop(None)


async def _unary(channel: grpc.aio.Channel, method: str = "Unary", rid: str | None = None) -> dict:
    call = channel.unary_unary(f"/{SERVICE}/{method}")
    metadata = ((METADATA_KEY, rid),) if rid is not None else None
    return json.loads(await call(b"", metadata=metadata, timeout=10))


def test_new_request_id_is_16_hex_and_unique() -> None:
    ids = {new_request_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(HEX16.match(i) for i in ids)


def test_outside_a_request_there_is_no_id() -> None:
    assert current_request_id() == ""
    assert outgoing_metadata() == ()


async def test_caller_id_is_seen_by_handler(channel: grpc.aio.Channel) -> None:
    seen = await _unary(channel, rid="abc")
    assert seen["rid"] == "abc"
    assert seen["outgoing"] == [[METADATA_KEY, "abc"]]
    assert seen["log"] == "abc"


async def test_missing_id_gets_a_fresh_one(channel: grpc.aio.Channel) -> None:
    first = await _unary(channel)
    second = await _unary(channel)
    assert HEX16.match(first["rid"]) and HEX16.match(second["rid"])
    assert first["rid"] != second["rid"]
    assert first["outgoing"] == [[METADATA_KEY, first["rid"]]]
    assert first["log"] == first["rid"]


async def test_empty_id_gets_a_fresh_one(channel: grpc.aio.Channel) -> None:
    seen = await _unary(channel, rid="")
    assert HEX16.match(seen["rid"])


async def test_overlong_id_is_truncated(channel: grpc.aio.Channel) -> None:
    seen = await _unary(channel, rid="x" * 200)
    assert seen["rid"] == "x" * 64


async def test_id_does_not_leak_into_the_next_call(channel: grpc.aio.Channel) -> None:
    assert (await _unary(channel, rid="abc"))["rid"] == "abc"
    assert (await _unary(channel))["rid"] != "abc"
    # Nor into the caller's own context (the server runs on the same event loop).
    assert current_request_id() == ""


async def test_concurrent_calls_each_see_their_own_id(channel: grpc.aio.Channel) -> None:
    # Both calls are inside the handler at once (a barrier) before either reads its id.
    a, b = await asyncio.gather(_unary(channel, "Meet", "id-a"), _unary(channel, "Meet", "id-b"))
    assert (a["rid"], a["outgoing"]) == ("id-a", [[METADATA_KEY, "id-a"]])
    assert (b["rid"], b["outgoing"]) == ("id-b", [[METADATA_KEY, "id-b"]])


async def test_unary_stream_sees_id_in_every_message(channel: grpc.aio.Channel) -> None:
    call = channel.unary_stream(f"/{SERVICE}/Stream")
    items = [json.loads(m) async for m in call(b"", metadata=((METADATA_KEY, "s-1"),), timeout=10)]
    assert [i["rid"] for i in items] == ["s-1", "s-1"]
    assert all(i["outgoing"] == [[METADATA_KEY, "s-1"]] for i in items)


async def test_unary_stream_without_id_keeps_one_fresh_id(channel: grpc.aio.Channel) -> None:
    call = channel.unary_stream(f"/{SERVICE}/Stream")
    items = [json.loads(m) async for m in call(b"", timeout=10)]
    assert len(items) == 2
    assert HEX16.match(items[0]["rid"])
    assert items[0]["rid"] == items[1]["rid"]


async def test_stream_stream_sees_id(channel: grpc.aio.Channel) -> None:
    call = channel.stream_stream(f"/{SERVICE}/Bidi")
    items = [
        json.loads(m) async for m in call(iter([b"1", b"2"]), metadata=((METADATA_KEY, "b-1"),), timeout=10)
    ]
    assert [i["rid"] for i in items] == ["b-1", "b-1"]


async def test_unknown_method_is_unimplemented(channel: grpc.aio.Channel) -> None:
    call = channel.unary_unary(f"/{SERVICE}/Nope")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(b"", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
