"""API keys: the `authorization: Bearer <key>` check in front of a service's calls.

Keys come from a comma-separated setting and/or a file (one key a line, blank lines and `#`
comments ignored). A presented key is compared with every configured key in constant time
(`hmac.compare_digest` on bytes, no early exit), so the answer's timing does not tell which
key, or how much of one, matched. Keys never appear in logs, reprs or error messages.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc

from voxserve.common.config import ConfigError
from voxserve.common.logging import get_logger

log = get_logger(__name__)

METADATA_KEY = "authorization"
SCHEME = "Bearer "
UNAUTHENTICATED_MESSAGE = "missing or invalid API key: send 'authorization: Bearer <key>'"

# Health checks and reflection (`grpcurl list`): open to probes unless configured otherwise.
PROBE_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)


def parse_key_lines(text: str) -> list[str]:
    """Keys of a keys file: one a line, spaces around it ignored; blank lines and lines starting
    with `#` are skipped (a `#` inside a key is part of the key)."""
    keys = []
    for line in text.splitlines():
        key = line.strip()
        if key and not key.startswith("#"):
            keys.append(key)
    return keys


def parse_key_list(text: str) -> list[str]:
    """Keys of a comma-separated setting; spaces around each key and empty items ignored."""
    return [key for key in (part.strip() for part in text.split(",")) if key]


def _valid(key: str) -> bool:
    # gRPC metadata values are printable ASCII; a key with a space could never follow "Bearer ".
    return all("!" <= c <= "~" for c in key)


class ApiKeys:
    """The configured keys; empty means the service is open."""

    def __init__(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for number, key in enumerate(keys, 1):
            if not _valid(key):
                # Name the key's position, never the key.
                raise ConfigError(f"API key #{number} must be printable ASCII without spaces")
        self._keys = tuple(dict.fromkeys(key.encode("ascii") for key in keys))

    @classmethod
    def load(
        cls, keys: str = "", keys_file: Path | None = None, *, file_setting: str = "keys file"
    ) -> ApiKeys:
        """Keys from a comma-separated setting plus a keys file (`file_setting` names it in errors).

        A keys file that is set but holds no key is an error: the service would otherwise be open.
        """
        collected = parse_key_list(keys)
        if keys_file is not None:
            try:
                text = Path(keys_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{file_setting}: cannot read {keys_file}: {exc}") from exc
            from_file = parse_key_lines(text)
            if not from_file:
                raise ConfigError(f"{file_setting}: {keys_file} holds no key")
            collected += from_file
        return cls(collected)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self._keys)} keys)"

    def matches(self, candidate: bytes) -> bool:
        """Whether `candidate` is one of the keys; every key is compared, whatever matched first."""
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(key, candidate)
        return matched

    def authorizes(self, header: str | bytes | None) -> bool:
        """Whether an `authorization` metadata value is exactly `Bearer <key>` with a configured key.

        The scheme is matched as written in the refusal message ("Bearer", one space); any other
        spelling, extra whitespace or an empty key is refused.
        """
        if header is None:
            return False
        value = header.encode("utf-8", "surrogatepass") if isinstance(header, str) else header
        scheme = SCHEME.encode("ascii")
        if not value.startswith(scheme):
            return False
        return self.matches(value[len(scheme) :])


def _authorization(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | bytes | None:
    for key, value in metadata or ():
        if key == METADATA_KEY:
            return value
    return None


def _service_of(method: str) -> str:
    """The service of a method path: "/pkg.Service/Method" -> "pkg.Service"."""
    return method.lstrip("/").split("/", 1)[0]


def _refusal(method: str, reason: str) -> grpc.RpcMethodHandler:
    """A handler that ends any kind of call with UNAUTHENTICATED without reading a request.

    A stream-stream handler serves unary and streaming callers alike (the wire is the same) and
    does not wait for a first request message. An async generator, so that wrapping interceptors
    (the request id's) can iterate it.
    """

    async def refuse(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        log.info("call refused", method=method, reason=reason)  # never the key itself
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
        yield  # unreachable: abort raises

    return grpc.stream_stream_rpc_method_handler(refuse)


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without a configured key with UNAUTHENTICATED; the handler never runs.

    Calls to `open_services` (by default health and reflection) pass without a key. A call to an
    unknown method without a key is refused too, so the method's existence is not revealed.
    """

    def __init__(self, keys: ApiKeys, open_services: Collection[str] = PROBE_SERVICES) -> None:
        if not len(keys):
            raise ValueError("ApiKeyInterceptor needs at least one key")
        self.keys = keys
        self.open_services = frozenset(open_services)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        details: Any = handler_call_details  # grpc's stub types omit the attributes
        method = str(details.method)
        if _service_of(method) in self.open_services:
            return await continuation(handler_call_details)
        header = _authorization(details.invocation_metadata)
        if self.keys.authorizes(header):
            return await continuation(handler_call_details)
        return _refusal(method, "no authorization metadata" if header is None else "malformed or unknown key")


def api_key_interceptors(keys: ApiKeys, open_probes: bool = True) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors a service with these keys needs: none when no key is configured (open)."""
    if not len(keys):
        return []
    return [ApiKeyInterceptor(keys, PROBE_SERVICES if open_probes else ())]
