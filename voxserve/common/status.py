"""Mapping of validation failures to gRPC statuses."""

from __future__ import annotations

from typing import NoReturn

import grpc


class InvalidArgument(ValueError):
    """Bad input; the message names the field and the limit."""


async def abort_invalid(context: grpc.aio.ServicerContext, message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
    raise AssertionError("unreachable")  # context.abort raises
