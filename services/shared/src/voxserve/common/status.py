"""Mapping of validation failures to gRPC statuses."""

from __future__ import annotations

from typing import NoReturn

import grpc


class InvalidArgument(ValueError):
    """Bad input; the message names the field and the limit."""


# Status details travel percent-encoded in a trailer; past the client's metadata limit (gRPC's
# default soft limit is 8 KiB) the client sees RESOURCE_EXHAUSTED instead of the real status, so
# a message that quotes the caller's input is cut to this many characters.
MAX_DETAILS_CHARS = 500


def bounded_details(message: str) -> str:
    if len(message) <= MAX_DETAILS_CHARS:
        return message
    return f"{message[: MAX_DETAILS_CHARS - 30]}... ({len(message)} characters)"


async def abort_invalid(context: grpc.aio.ServicerContext, message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, bounded_details(message))
    raise AssertionError("unreachable")  # context.abort raises
