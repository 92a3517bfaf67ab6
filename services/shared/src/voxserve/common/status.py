"""The one place where exceptions become gRPC statuses and a call's outcome is counted.

A servicer raises `CallError`s (bad input, overload, a failed upstream) from anywhere in a call;
`call_outcome` turns them into the matching status with a bounded message, and records how the
call ended in the service's outcome counter, whatever the path out of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, NoReturn, Protocol

import grpc

# Status details travel percent-encoded in a trailer; past the client's metadata limit (gRPC's
# default soft limit is 8 KiB) the client sees RESOURCE_EXHAUSTED instead of the real status, so
# a message that quotes the caller's input is cut to this many characters.
MAX_DETAILS_CHARS = 500
RETRY_PUSHBACK_MS = 500
# gRPC's standard pushback key: clients with retry policies honour it.
RETRY_PUSHBACK = (("grpc-retry-pushback-ms", str(RETRY_PUSHBACK_MS)),)


class CallError(Exception):
    """An error that ends a call with a status of its own. `outcome` labels it in metrics."""

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL
    outcome: ClassVar[str] = "error"

    @property
    def status(self) -> grpc.StatusCode:
        return self.code

    @property
    def trailers(self) -> Sequence[tuple[str, str]]:
        return ()


class InvalidArgument(CallError, ValueError):
    """Bad input; the message names the field and the limit."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    outcome = "invalid"


class FailedPrecondition(CallError):
    """The service cannot do this in its present state (e.g. its pack lacks a part); the message
    says what is missing."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    outcome = "precondition"


class NotFound(CallError):
    code = grpc.StatusCode.NOT_FOUND
    outcome = "not_found"


class AlreadyExists(CallError):
    code = grpc.StatusCode.ALREADY_EXISTS
    outcome = "exists"


class LimitReached(CallError):
    """A per-caller quota is used up (not overload: retrying later does not help)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    outcome = "quota"


class Overloaded(CallError):
    """The service holds its maximum of concurrent calls (or streams): retry later or elsewhere."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    outcome = "refused"

    @property
    def trailers(self) -> Sequence[tuple[str, str]]:
        return RETRY_PUSHBACK


def bounded_details(message: str) -> str:
    if len(message) <= MAX_DETAILS_CHARS:
        return message
    return f"{message[: MAX_DETAILS_CHARS - 30]}... ({len(message)} characters)"


async def abort_with(context: grpc.aio.ServicerContext, error: CallError) -> NoReturn:
    await context.abort(error.status, bounded_details(str(error)), tuple(error.trailers))
    raise AssertionError("unreachable")  # context.abort raises


class OutcomeCounter(Protocol):
    """A labelled counter (prometheus_client's `Counter` with one label)."""

    def labels(self, *values: str) -> _Incrementable: ...


class _Incrementable(Protocol):
    def inc(self, amount: float = 1) -> None: ...


@dataclass
class Outcome:
    """How a call ended: a handler sets `value` when it completes; errors set their own."""

    value: str = "cancelled"


@contextlib.asynccontextmanager
async def call_outcome(
    context: grpc.aio.ServicerContext, counter: OutcomeCounter | None = None
) -> AsyncIterator[Outcome]:
    """Runs a handler's body: a `CallError` becomes its status, anything else INTERNAL (and is
    logged by gRPC), a cancelled call stays cancelled; the outcome is counted once at the end."""
    outcome = Outcome()
    try:
        yield outcome
    except CallError as exc:
        outcome.value = exc.outcome
        await abort_with(context, exc)
    except (asyncio.CancelledError, GeneratorExit, grpc.aio.AbortError):
        raise
    except Exception:
        outcome.value = "error"
        raise
    finally:
        if counter is not None:
            counter.labels(outcome.value).inc()
