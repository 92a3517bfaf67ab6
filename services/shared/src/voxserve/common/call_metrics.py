"""Every call's final status, counted by method: the errors-by-status metric of each service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import grpc
from prometheus_client import Counter

CALLS = Counter("voxserve_calls_total", "gRPC calls by method and final status", ["method", "code"])


@contextlib.contextmanager
def counted(context: grpc.aio.ServicerContext, method: str) -> Iterator[None]:
    """Counts the call run inside by the status it ends with.

    An aborted call carries its code; a handler that raised anything else ends UNKNOWN, and one
    cancelled by its client (or its deadline) ends CANCELLED, with no code set on the context.
    """
    code = "UNKNOWN"
    try:
        yield
        code = _code_name(context.code()) or "OK"
    except (asyncio.CancelledError, GeneratorExit):  # GeneratorExit: a stream closed mid-response
        code = "CANCELLED"
        raise
    except grpc.aio.AbortError:
        code = _code_name(context.code()) or "UNKNOWN"
        raise
    finally:
        CALLS.labels(method, code).inc()


def _code_name(code: object) -> str | None:
    if code is None:
        return None
    if isinstance(code, grpc.StatusCode):
        return code.name
    names = {status.value[0]: status.name for status in grpc.StatusCode}
    return names.get(code) if isinstance(code, int) else str(code)
