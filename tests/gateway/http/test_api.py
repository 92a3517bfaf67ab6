"""The context of every HTTP request, served by uvicorn on a free port: request ids, API keys,
readiness and draining, the request counter's route labels, and CORS."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.gateway.test_servicer import Runner
from voxserve.common.auth import ApiKeys
from voxserve.gateway.config import load
from voxserve.gateway.http.api import Readiness, http_app, route_label
from voxserve.gateway.http.server import HttpServer
from voxserve.gateway.speech import SpeechCore
from voxserve.gateway.voice_directory import VoiceDirectory
from voxserve.gateway.voices import VoiceRegistry

KEY = "test-key-1"
ORIGIN = "https://app.example"
BEARER = {"authorization": f"Bearer {KEY}"}
SOCKET_SECONDS = 10


@asynccontextmanager
async def serving(
    keys: tuple[str, ...] = (), readiness: Readiness | None = None, cors: str = ""
) -> AsyncIterator[httpx.AsyncClient]:
    # No route here synthesises: a runner that is called fails the request loudly.
    runner = Runner(error=AssertionError("no segment runs for these routes"))
    config = load(http_cors_origins=cors)
    core = SpeechCore(VoiceDirectory(VoiceRegistry.builtin()), runner, config)
    readiness = readiness or Readiness(ready=True)
    app = http_app(core, None, config, ApiKeys(keys), readiness)
    server = HttpServer(app, "127.0.0.1", 0, grace_seconds=1, setting="VOXSERVE_GATEWAY_HTTP_PORT")
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
            yield client
    finally:
        await server.stop()


def requests_counted(route: str, status: int) -> float:
    labels = {"route": route, "status": str(status)}
    return REGISTRY.get_sample_value("voxserve_gateway_http_requests_total", labels) or 0.0


async def test_a_clients_request_id_is_echoed_and_one_is_made_otherwise() -> None:
    async with serving() as client:
        given = await client.get("/healthz", headers={"x-request-id": "client-chosen-42"})
        made = [(await client.get("/healthz")).headers["x-request-id"] for _ in range(2)]
        long = await client.get("/healthz", headers={"x-request-id": "r" * 100})
    assert given.headers["x-request-id"] == "client-chosen-42"
    assert all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in made)
    assert made[0] != made[1]
    assert long.headers["x-request-id"] == "r" * 64


async def test_api_routes_need_a_configured_key_while_page_and_probes_stay_open() -> None:
    async with serving(keys=(KEY,)) as client:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": KEY}):
            refused = await client.get("/v1/models", headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["type"] == "authentication_error"
            assert refused.headers["x-request-id"]
        assert (await client.get("/v1/audio/voices")).status_code == 401
        assert (await client.delete("/v1/audio/voices/mine")).status_code == 401
        allowed = await client.get("/v1/models", headers=BEARER)
        assert allowed.status_code == 200
        assert allowed.json()["data"][0]["id"] == "voxserve"
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert (await client.get("/static/playground.js")).status_code == 200


async def test_without_keys_the_api_is_open() -> None:
    async with serving() as client:
        assert (await client.get("/v1/models")).status_code == 200
        assert (await client.get("/v1/audio/voices")).status_code == 200


async def test_a_websocket_takes_the_key_as_a_query_parameter() -> None:
    async with serving(keys=(KEY,)) as client, asyncio.timeout(SOCKET_SECONDS):
        url = str(client.base_url).replace("http://", "ws://") + "/v1/audio/speech/stream"
        async with connect(url) as socket:
            error = json.loads(await socket.recv())
            with pytest.raises(ConnectionClosed):
                await socket.recv()
        assert error["type"] == "error" and error["error"]["code"] == "unauthenticated"
        assert socket.close_code == 1008
        async with connect(f"{url}?api_key={KEY}") as socket:
            assert socket.response is not None
            assert socket.response.headers["x-request-id"]
            # Past the key check, the speech route itself answers: here, about the voice.
            await socket.send(json.dumps({"type": "config", "voice": "nobody"}))
            error = json.loads(await socket.recv())
        assert (error["error"]["param"], error["error"]["code"]) == ("voice", "invalid")


async def test_readiness_starting_ready_then_draining() -> None:
    readiness = Readiness()
    async with serving(readiness=readiness) as client:
        starting = await client.get("/readyz")
        assert (starting.status_code, starting.json()) == (503, {"status": "starting"})
        readiness.ready = True
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert (await client.get("/v1/models")).status_code == 200

        readiness.draining = True
        draining = await client.get("/readyz")
        assert (draining.status_code, draining.json()) == (503, {"status": "draining"})
        refused = await client.get("/v1/models")
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "draining"
        assert (await client.get("/healthz")).status_code == 200, "the process still runs"


async def test_requests_are_counted_by_route_template_and_status() -> None:
    template = "/v1/audio/voices/{id}"
    before = {
        (template, 404): requests_counted(template, 404),
        (template, 400): requests_counted(template, 400),
        ("other", 404): requests_counted("other", 404),
        ("/healthz", 200): requests_counted("/healthz", 200),
    }
    async with serving() as client:
        assert (await client.delete("/v1/audio/voices/not-stored-1")).status_code == 404
        assert (await client.delete("/v1/audio/voices/not-stored-2")).status_code == 404
        built_in = await client.delete("/v1/audio/voices/default")
        assert built_in.status_code == 400, "a built-in voice cannot be deleted"
        assert (await client.get("/no/such/path")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
    increase = {labels: requests_counted(*labels) - count for labels, count in before.items()}
    assert increase == {(template, 404): 2, (template, 400): 1, ("other", 404): 1, ("/healthz", 200): 1}
    assert requests_counted("/v1/audio/voices/not-stored-1", 404) == 0


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/v1/audio/voices/abc", "/v1/audio/voices/{id}"),
        ("/v1/audio/voices", "/v1/audio/voices"),
        ("/v1/audio/speech", "/v1/audio/speech"),
        ("/v1/audio/speech/stream", "/v1/audio/speech/stream"),
        ("/v1/models", "/v1/models"),
        ("/static/playground.css", "/static"),
        ("/", "/"),
        ("/readyz", "/readyz"),
        ("/v1/models/voxserve", "other"),
        ("/metrics", "other"),
    ],
)
def test_route_label(path: str, label: str) -> None:
    assert route_label(path) == label


async def test_cors_headers_only_for_configured_origins() -> None:
    preflight = {
        "origin": ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    async with serving(keys=(KEY,), cors=ORIGIN) as client:
        answered = await client.options("/v1/audio/speech", headers=preflight)
        assert answered.status_code == 200, "a preflight carries no key and is answered anyway"
        assert answered.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in answered.headers["access-control-allow-methods"]
        assert "authorization" in answered.headers["access-control-allow-headers"].lower()
        simple = await client.get("/v1/models", headers={"origin": ORIGIN, **BEARER})
        assert simple.headers["access-control-allow-origin"] == ORIGIN
        assert "x-request-id" in simple.headers["access-control-expose-headers"]
        stranger = await client.get("/v1/models", headers={"origin": "https://other.example", **BEARER})
        assert "access-control-allow-origin" not in stranger.headers
    async with serving(keys=(KEY,)) as client:
        plain = await client.get("/v1/models", headers={"origin": ORIGIN, **BEARER})
        assert plain.status_code == 200
        assert not [h for h in plain.headers if h.startswith("access-control-")]
        unanswered = await client.options("/v1/audio/speech", headers=preflight)
        assert "access-control-allow-origin" not in unanswered.headers
