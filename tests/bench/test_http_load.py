"""The HTTP load client against a real local HTTP server (uvicorn on a socket) that streams PCM
in delayed chunks: first-audio timing, sample accounting across odd chunk boundaries, the pooled
connections, the request it sends and the errors it records."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bench.corpus import Text
from bench.http_load import HTTP_SAMPLE_RATE, run_http_load, speech_body, wait_http_ready
from voxserve.stack import free_port

FIRST_DELAY = 0.3
GAP = 0.1
# A first chunk of 3 bytes ends inside the second sample; the next completes it.
CHUNKS = (b"\x01" * 3, b"\x02" * 4797, b"\x03" * 9600)
BODY_BYTES = sum(len(c) for c in CHUNKS)
TEXTS = [Text("short-0", "short", "Hello there."), Text("short-1", "short", "Good morning.")]


@dataclass
class Seen:
    health_ports: set[int] = field(default_factory=set)
    speech_ports: set[int] = field(default_factory=set)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    encodings: set[str] = field(default_factory=set)


def app(seen: Seen) -> Starlette:
    async def healthz(request: Request) -> Response:
        assert request.client is not None
        seen.health_ports.add(request.client.port)
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        return JSONResponse({"status": "ready"})

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "tiny-model", "object": "model"}]})

    async def speech(request: Request) -> Response:
        body = await request.json()
        assert request.client is not None
        seen.speech_ports.add(request.client.port)
        seen.bodies.append(body)
        seen.request_ids.append(request.headers.get("x-request-id", ""))
        seen.encodings.add(request.headers.get("accept-encoding", ""))
        if body["voice"] == "nope":
            error = {"message": "voice 'nope' is unknown", "type": "invalid_request_error", "param": "voice"}
            return JSONResponse({"error": error}, status_code=400)

        async def audio() -> AsyncIterator[bytes]:
            await asyncio.sleep(FIRST_DELAY)
            for i, chunk in enumerate(CHUNKS):
                if i:
                    await asyncio.sleep(GAP)
                yield chunk

        return StreamingResponse(audio(), media_type="audio/pcm")

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/v1/models", models),
        Route("/v1/audio/speech", speech, methods=["POST"]),
    ]
    return Starlette(routes=routes)


@pytest.fixture
def server() -> Iterator[tuple[str, Seen]]:
    seen = Seen()
    port = free_port()
    config = uvicorn.Config(
        app(seen), host="127.0.0.1", port=port, lifespan="off", ws="none", http="h11", log_level="error"
    )
    running = uvicorn.Server(config)
    # Its own thread and loop, so the client's loop does not pace the server's chunks.
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        running.should_exit = True
        thread.join(10)


async def test_records_time_first_audio_and_count_samples_across_chunk_seams(
    server: tuple[str, Seen],
) -> None:
    url, seen = server
    result = await run_http_load(url, 2, texts=TEXTS, requests=4, voice="alloy", model="tiny-model")
    assert [r.request for r in result.records] == [0, 1, 2, 3]
    for r in result.records:
        assert r.error is None, r.error
        assert r.concurrency == 2
        # The first chunk holds one whole sample and half of the next: it is still first audio.
        assert r.ttfa_seconds is not None and FIRST_DELAY <= r.ttfa_seconds < FIRST_DELAY + 0.2
        assert r.total_seconds >= FIRST_DELAY + 2 * GAP
        assert r.samples == BODY_BYTES // 2
        assert r.audio_seconds == pytest.approx(BODY_BYTES / 2 / HTTP_SAMPLE_RATE)
        assert r.real_time_factor == pytest.approx(r.total_seconds / r.audio_seconds)
        # One sample of audio, then 100 ms without any: a listener stalls.
        assert r.underruns >= 1 and r.underrun_wait_ms > 50
    # Two clients, two requests each, one after the other.
    assert 2 * (FIRST_DELAY + 2 * GAP) <= result.wall_seconds < 2 * (FIRST_DELAY + 2 * GAP) + 0.5
    assert seen.bodies[0] == speech_body("Hello there.", "alloy", "tiny-model")
    assert seen.bodies[0]["response_format"] == "pcm" and seen.bodies[0]["stream_format"] == "audio"
    assert sorted(seen.request_ids) == [f"bench-http-c2-r{i}" for i in range(4)]
    assert seen.encodings == {"identity"}
    # The pool was filled before the clock started and its two connections carried every request.
    assert len(seen.health_ports) == 2
    assert seen.speech_ports == seen.health_ports


async def test_an_error_status_is_recorded_with_its_message(server: tuple[str, Seen]) -> None:
    url, _ = server
    result = await run_http_load(url, 1, texts=TEXTS, requests=1, voice="nope")
    (r,) = result.records
    assert r.error is not None and r.error.startswith("HTTP 400: ")
    assert "voice 'nope' is unknown" in r.error
    assert r.ttfa_seconds is None and r.samples == 0 and r.real_time_factor is None


async def test_a_request_past_its_deadline_is_an_error(server: tuple[str, Seen]) -> None:
    url, _ = server
    result = await run_http_load(url, 1, texts=TEXTS, requests=1, timeout=FIRST_DELAY / 2)
    (r,) = result.records
    assert r.error is not None and r.error.startswith("DEADLINE_EXCEEDED")
    assert r.ttfa_seconds is None
    assert FIRST_DELAY / 2 <= r.total_seconds < FIRST_DELAY


async def test_readiness_gives_the_listed_model(server: tuple[str, Seen]) -> None:
    url, _ = server
    assert await wait_http_ready(url) == "tiny-model"


async def test_readiness_times_out_without_a_server() -> None:
    with pytest.raises(TimeoutError, match="not ready"):
        await wait_http_ready(f"http://127.0.0.1:{free_port()}", timeout=0.3)
