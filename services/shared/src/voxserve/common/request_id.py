"""The request id that travels in gRPC metadata through gateway, generator and vocoder."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from voxserve.common.call_metrics import counted
from voxserve.common.status import InvalidArgument

METADATA_KEY = "x-request-id"

_current: contextvars.ContextVar[str] = contextvars.ContextVar("voxserve_request_id", default="")


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def current_request_id() -> str:
    return _current.get()


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata for a downstream call made on behalf of the current request."""
    rid = _current.get()
    return ((METADATA_KEY, rid),) if rid else ()


def _from_context(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == METADATA_KEY and value:
            return str(value)[:64]
    return new_request_id()


def bind(context: grpc.aio.ServicerContext) -> None:
    """Make the call's request id the current one (and part of every log line)."""
    bind_id(_from_context(context))


def bind_id(rid: str) -> str:
    """Make `rid` (a caller's, cut to 64 characters, or a new one when empty) the current request
    id and part of every log line; returns it. For front ends other than gRPC (HTTP)."""
    rid = rid[:64] or new_request_id()
    _current.set(rid)
    structlog.contextvars.bind_contextvars(request_id=rid)
    return rid


class RequestIdInterceptor(grpc.aio.ServerInterceptor):
    """Binds the caller's request id (or a new one) for the duration of each call, and counts
    each call's final status by method (`voxserve_calls_total`).

    Wrapping the behaviour itself (not just the interceptor hook) matters: grpc.aio runs the
    handler in its own task, so context variables set in the hook would not reach it.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        deserialize = _lenient(handler.request_deserializer)
        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                bind(context)
                with counted(context, method):
                    if isinstance(request, Undecodable):
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
                    return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(unary_unary, deserialize, handler.response_serializer)
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                bind(context)
                with counted(context, method):
                    if isinstance(request, Undecodable):
                        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
                    async for item in inner_us(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, deserialize, handler.response_serializer
            )
        if handler.stream_stream:
            inner_ss = handler.stream_stream

            async def stream_stream(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                bind(context)
                with counted(context, method):
                    async for item in inner_ss(_decoded(requests), context):
                        yield item

            return grpc.stream_stream_rpc_method_handler(
                stream_stream, deserialize, handler.response_serializer
            )
        return handler


class Undecodable:
    """A request whose bytes are not a valid message: the call gets INVALID_ARGUMENT, not the
    UNKNOWN that a failing deserializer would give."""

    def __init__(self, message: str):
        self.message = message


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None
    owner = getattr(deserialize, "__self__", None)
    name = getattr(getattr(owner, "DESCRIPTOR", None), "full_name", "request")

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # protobuf's DecodeError, or anything a parser raises
            return Undecodable(f"request: the bytes are not a valid {name} message ({exc})")

    return parse


async def _decoded(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A request stream whose undecodable messages raise InvalidArgument where they are read, so
    the servicer ends the call as it does for any other bad message."""
    async for request in requests:
        if isinstance(request, Undecodable):
            raise InvalidArgument(request.message)
        yield request
