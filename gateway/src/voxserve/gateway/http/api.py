"""The HTTP application: routes, and the context every request runs in (request id, API key,
readiness, metrics, CORS)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from voxserve.common.auth import ApiKeys
from voxserve.common.logging import get_logger
from voxserve.common.request_id import METADATA_KEY as REQUEST_ID_HEADER
from voxserve.common.request_id import bind_id
from voxserve.common.status import CallError
from voxserve.gateway import metrics
from voxserve.gateway.caller import SHARED_SCOPE, key_fingerprint
from voxserve.gateway.config import GatewayConfig
from voxserve.gateway.enrolment import VoiceEnrolment
from voxserve.gateway.http.errors import ApiError
from voxserve.gateway.http.models import ServedModel
from voxserve.gateway.http.speech_route import SpeechRoute
from voxserve.gateway.http.voices_route import VoicesRoute
from voxserve.gateway.http.websocket_route import SpeechSocket
from voxserve.gateway.speech import SpeechCore

log = get_logger(__name__)

STATIC = Path(__file__).parent / "static"
# Paths a client needs no key for: the page, its files and the probes.
OPEN_PREFIXES = ("/static/",)
OPEN_PATHS = ("/", "/healthz", "/readyz")
VOICE_PATH = "/v1/audio/voices/"
# Probes and page files would drown the log; they are counted in metrics all the same.
QUIET_ROUTES = ("/healthz", "/readyz", "/static")


@dataclass
class Readiness:
    """Ready once both APIs listen; draining from the first moment of a stop."""

    ready: bool = False
    draining: bool = False


def route_label(path: str) -> str:
    """The metrics label of a path: the route template, so ids do not multiply the series."""
    if path.startswith(VOICE_PATH):
        return VOICE_PATH + "{id}"
    if path.startswith("/static/"):
        return "/static"
    if path in (*OPEN_PATHS, "/v1/models", "/v1/audio/voices", "/v1/audio/speech", "/v1/audio/speech/stream"):
        return path
    return "other"


class RequestContext:
    """Binds the request id (the caller's `x-request-id`, or a new one) and returns it in a
    header; checks the API key on /v1/ and puts its voice scope in the request state; refuses
    API calls while draining; counts each request by route and status."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, readiness: Readiness) -> None:
        self.app = app
        self.keys = keys
        self.readiness = readiness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        rid = bind_id(headers.get(REQUEST_ID_HEADER, ""))
        path: str = scope["path"]
        status = 0
        started = time.monotonic()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            elif message["type"] == "websocket.accept":
                status = 101
                message.setdefault("headers", []).append((REQUEST_ID_HEADER.encode(), rid.encode()))
            elif message["type"] == "websocket.close" and status == 0:
                status = 403
            await send(message)

        try:
            if path.startswith("/v1/") and (refusal := self._refusal(scope, headers)) is not None:
                await self._refuse(refusal, scope, receive, send_with_id)
                return
            await self.app(scope, receive, send_with_id)
        finally:
            route = route_label(path)
            metrics.HTTP_REQUESTS.labels(route, str(status or 500)).inc()
            if route not in QUIET_ROUTES:
                log.info(
                    "http request",
                    method=scope.get("method", "WEBSOCKET"),
                    route=route,
                    status=status or 500,
                    seconds=round(time.monotonic() - started, 4),
                )

    def _refusal(self, scope: Scope, headers: Headers) -> ApiError | None:
        if self.readiness.draining:
            return ApiError(503, "the gateway is shutting down; retry on another replica", code="draining")
        state = scope.setdefault("state", {})
        state["voice_scope"] = SHARED_SCOPE
        if not len(self.keys):
            return None
        header = headers.get("authorization")
        if header is None and scope["type"] == "websocket":
            # Browsers cannot set headers on a WebSocket: the key may come as a query parameter.
            key = QueryParams(scope.get("query_string", b"")).get("api_key")
            header = f"Bearer {key}" if key else None
        if not self.keys.authorizes(header):
            return ApiError(
                401, "missing or invalid API key: send 'Authorization: Bearer <key>'", code="unauthenticated"
            )
        state["voice_scope"] = key_fingerprint(header.removeprefix("Bearer ") if header else "")
        return None

    async def _refuse(self, error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await error.response()(scope, receive, send)
            return
        socket = WebSocket(scope, receive, send)
        await socket.accept()
        await socket.send_json({"type": "error", **error.body()})
        await socket.close(1008 if error.status < 500 else 1013)


def http_app(
    core: SpeechCore,
    enrolment: VoiceEnrolment | None,
    config: GatewayConfig,
    keys: ApiKeys,
    readiness: Readiness,
) -> Starlette:
    model = ServedModel.of(config.http_model, core.voices.registry)
    speech = SpeechRoute(core, model, config)
    voices = VoicesRoute(core.voices, enrolment, config)
    socket = SpeechSocket(core, model, config)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if readiness.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        if not readiness.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [model.card()]})

    routes: list[BaseRoute] = [
        Route("/", page),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/v1/models", models),
        Route("/v1/audio/speech", speech.create, methods=["POST"]),
        Route("/v1/audio/voices", voices.list, methods=["GET"]),
        Route("/v1/audio/voices", voices.create, methods=["POST"]),
        Route("/v1/audio/voices/{voice_id}", voices.get, methods=["GET"]),
        Route("/v1/audio/voices/{voice_id}", voices.delete, methods=["DELETE"]),
        WebSocketRoute("/v1/audio/speech/stream", socket.run),
        Mount("/static", StaticFiles(directory=STATIC, check_dir=False)),
    ]
    middleware = [Middleware(RequestContext, keys=keys, readiness=readiness)]
    origins = [o.strip() for o in config.http_cors_origins.split(",") if o.strip()]
    if origins:
        # Outermost: a preflight is answered before the key check (browsers send none on it).
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["authorization", "content-type", REQUEST_ID_HEADER],
                expose_headers=[REQUEST_ID_HEADER],
            ),
        )
    errors = {ApiError: _api_error, CallError: _api_error}
    return Starlette(routes=routes, middleware=middleware, exception_handlers=errors)  # type: ignore[arg-type]


async def _api_error(request: Request, exc: Exception) -> Response:
    """Errors of the shared core (CallError) and of the HTTP layer, in OpenAI's shape."""
    error = exc if isinstance(exc, ApiError) else ApiError.of(exc)  # type: ignore[arg-type]
    return error.response()
