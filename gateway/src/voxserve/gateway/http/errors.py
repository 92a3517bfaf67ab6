"""Errors in OpenAI's JSON shape, with the HTTP status that matches the gRPC status the same
failure gets on the gRPC API."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import grpc
from starlette.responses import JSONResponse

from voxserve.common.status import RETRY_PUSHBACK_MS, CallError, Overloaded, bounded_details
from voxserve.gateway.pipeline import UpstreamError

# gRPC status -> HTTP status, for errors raised in the gateway and relayed from upstreams.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error"}
RETRY_AFTER_SECONDS = max(1, round(RETRY_PUSHBACK_MS / 1000))
# Messages name their field first ("input has 3000 characters; ..."): that field is the `param`.
_LEADING_FIELD = re.compile(r"([a-z_][a-z0-9_.\[\]]*)[ :]")


@dataclass
class ApiError(Exception):
    status: int
    message: str
    param: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def type(self) -> str:
        if self.status == 429:
            return "rate_limit_error"
        if self.status >= 500:
            return "server_error"
        return ERROR_TYPES.get(self.status, "invalid_request_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)

    @classmethod
    def of(cls, error: CallError) -> ApiError:
        """The HTTP form of an error the shared core raised."""
        message = bounded_details(str(error))
        status = HTTP_STATUS.get(error.status, 500)
        headers: dict[str, str] = {}
        if isinstance(error, UpstreamError):
            # An upstream that is down or full is this service being unavailable to the client.
            if error.status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                status = 503
            elif status == 500 or status == 499:
                status = 502
        if isinstance(error, Overloaded) or (isinstance(error, UpstreamError) and error.trailers):
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        param = None
        # A relayed upstream message starts with the upstream's name, not a field of the request.
        upstream = isinstance(error, UpstreamError)
        if status == 400 and not upstream and (match := _LEADING_FIELD.match(message)):
            param = match.group(1)
        return cls(status, message, param=param, code=error.outcome, headers=headers)


def bad_request(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param, code="invalid")
