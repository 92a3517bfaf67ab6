"""Errors of the shared core in OpenAI's JSON shape, with the HTTP status matching their gRPC status."""

from __future__ import annotations

import json

import grpc
import pytest

from voxserve.common.status import (
    MAX_DETAILS_CHARS,
    AlreadyExists,
    CallError,
    FailedPrecondition,
    InvalidArgument,
    LimitReached,
    NotFound,
    Overloaded,
)
from voxserve.gateway.http.errors import ApiError, bad_request
from voxserve.gateway.pipeline import UpstreamError


@pytest.mark.parametrize(
    ("error", "status", "kind", "code"),
    [
        (
            InvalidArgument("input has 3000 characters; the limit is 2000"),
            400,
            "invalid_request_error",
            "invalid",
        ),
        (FailedPrecondition("the pack has no speaker encoder"), 400, "invalid_request_error", "precondition"),
        (NotFound("voice 'x' is not stored"), 404, "not_found_error", "not_found"),
        (AlreadyExists("voice_id 'x' is taken"), 409, "invalid_request_error", "exists"),
        (LimitReached("this API key already stores 3 voices"), 429, "rate_limit_error", "quota"),
        (Overloaded("the gateway holds 128 speech calls"), 429, "rate_limit_error", "refused"),
        (CallError("something broke"), 500, "server_error", "error"),
    ],
)
def test_core_errors_get_their_status_type_and_code(
    error: CallError, status: int, kind: str, code: str
) -> None:
    api = ApiError.of(error)
    assert (api.status, api.type, api.code, api.message) == (status, kind, code, str(error))


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ("input has 3000 characters; the limit is 2000", "input"),
        ("voice 'nobody' is unknown; built-in voices: default", "voice"),
        ("header.voice_id must be 1..64 characters", "header.voice_id"),
        ("speed: 9 is outside 0.25..4.0", "speed"),
    ],
)
def test_bad_input_names_its_leading_field_as_param(message: str, param: str) -> None:
    api = ApiError.of(InvalidArgument(message))
    assert (api.status, api.param) == (400, param)


def test_only_bad_input_gets_a_param() -> None:
    assert ApiError.of(NotFound("voice 'x' is not stored")).param is None
    assert ApiError.of(InvalidArgument("Text is empty")).param is None, "no lower-case field name first"


def test_a_quota_is_429_without_retry_after_and_overload_429_with_it() -> None:
    assert "Retry-After" not in ApiError.of(LimitReached("limit")).headers
    retry = ApiError.of(Overloaded("full")).headers["Retry-After"]
    assert retry.isdigit() and int(retry) >= 1


@pytest.mark.parametrize(
    ("upstream", "status", "retry_after"),
    [
        (grpc.StatusCode.UNAVAILABLE, 503, False),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 503, True),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504, False),
        (grpc.StatusCode.INTERNAL, 502, False),
        (grpc.StatusCode.UNKNOWN, 502, False),
        (grpc.StatusCode.CANCELLED, 502, False),
    ],
)
def test_upstream_failures_map_to_gateway_statuses(
    upstream: grpc.StatusCode, status: int, retry_after: bool
) -> None:
    api = ApiError.of(UpstreamError("vocoder", upstream, "went wrong"))
    assert api.status == status
    assert api.type == "server_error"
    assert api.message == "vocoder: went wrong"
    assert api.code == "upstream_error"
    assert ("Retry-After" in api.headers) is retry_after


def test_the_response_has_openais_shape_status_and_headers() -> None:
    response = ApiError.of(Overloaded("the gateway holds 128 speech calls")).response()
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"].isdigit()
    assert json.loads(bytes(response.body)) == {
        "error": {
            "message": "the gateway holds 128 speech calls",
            "type": "rate_limit_error",
            "param": None,
            "code": "refused",
        }
    }


def test_long_messages_are_bounded() -> None:
    api = ApiError.of(InvalidArgument("input " + "x" * 5000))
    assert len(api.message) <= MAX_DETAILS_CHARS
    assert api.message.startswith("input xxx") and "5006 characters" in api.message
    assert api.param == "input"


def test_bad_request_names_its_param() -> None:
    error = bad_request("model", "model is required")
    assert error.body() == {
        "error": {
            "message": "model is required",
            "type": "invalid_request_error",
            "param": "model",
            "code": "invalid",
        }
    }
    assert error.status == 400 and str(error) == "model is required"
