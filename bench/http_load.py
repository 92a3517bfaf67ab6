"""Closed-loop load through the gateway's HTTP front: `POST /v1/audio/speech` with raw PCM streamed
in the body, the same clients, texts and records as the gRPC load (`bench.load`), over one
httpx client whose connection pool holds one connection per client."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import httpx

from bench.corpus import Text, pick
from bench.load import (
    CONNECT_TIMEOUT_SECONDS,
    PCM16_BYTES_PER_SAMPLE,
    Claims,
    LoadResult,
    StreamRecord,
    closed_loop,
    record_from_arrivals,
)

HTTP_SAMPLE_RATE = 24000
"""Every response format of the HTTP front is 24 kHz mono; `pcm` is raw s16le."""
SPEECH_PATH = "/v1/audio/speech"
DEFAULT_MODEL = "voxserve"
ERROR_BODY_CHARS = 300


def speech_body(text: str, voice: str, model: str = DEFAULT_MODEL) -> dict[str, Any]:
    return {
        "model": model,
        "input": text,
        "voice": voice,
        "response_format": "pcm",
        "stream_format": "audio",
    }


async def wait_http_ready(base_url: str, timeout: float = CONNECT_TIMEOUT_SECONDS) -> str:  # noqa: ASYNC109
    """Wait until the front answers /readyz with 200; return the first model id it lists. The
    gateway starts its HTTP server beside gRPC, so it may answer a moment after gRPC does."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=5.0) as client:
        while True:
            try:
                if (await client.get("/readyz")).status_code == 200:
                    models = (await client.get("/v1/models")).json()["data"]
                    return str(models[0]["id"]) if models else DEFAULT_MODEL
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{base_url} not ready after {timeout:.0f} s")
            await asyncio.sleep(0.2)


async def run_http_load(
    base_url: str,
    concurrency: int,
    *,
    texts: Sequence[Text],
    requests: int | None = None,
    duration: float | None = None,
    voice: str = "default",
    model: str = DEFAULT_MODEL,
    # Each request's deadline, from sending it to the end of its body.
    timeout: float = 300,  # noqa: ASYNC109
) -> LoadResult:
    """As `bench.load.run_load`, through HTTP. The front takes no token cap or seed, so each
    request is capped by the gateway's default (in proportion to its text)."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if requests is None and duration is None:
        raise ValueError("give requests, duration or both; otherwise the run never ends")
    if not texts:
        raise ValueError("no texts")

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # Loopback only: proxies from the environment must not carry these requests.
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, trust_env=False, timeout=httpx.Timeout(timeout)
    ) as client:
        await _open_connections(client, concurrency)
        claims = Claims(requests, duration)
        run_start = claims.start

        async def one(index: int, number: int, turn: int) -> StreamRecord:
            text = pick(texts, number, turn)
            body = speech_body(text.text, voice, model)
            headers = {"x-request-id": f"bench-http-c{concurrency}-r{index}"}
            fields = {"request": index, "client": number, "text_id": text.id, "kind": text.kind}
            return await http_stream(
                client, body, headers, timeout, run_start, concurrency=concurrency, **fields
            )

        records = await closed_loop(concurrency, claims.next, one)
        wall = time.perf_counter() - run_start
    return LoadResult(records=records, wall_seconds=wall)


async def _open_connections(client: httpx.AsyncClient, count: int) -> None:
    """Fill the pool with `count` kept-alive connections before the clock starts, as the gRPC
    load connects its channel first: no request's first audio includes a TCP handshake.
    Requests started together each take a connection of their own."""
    responses = await asyncio.wait_for(
        asyncio.gather(*(client.get("/healthz") for _ in range(count))), CONNECT_TIMEOUT_SECONDS
    )
    for response in responses:
        response.raise_for_status()


async def http_stream(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    headers: dict[str, str],
    deadline_seconds: float,
    run_start: float,
    /,
    **fields: Any,
) -> StreamRecord:
    """One speech request. First audio is the arrival of the first non-empty body chunk; each
    chunk's samples are the whole samples completed by it (a chunk may end inside a sample)."""
    arrivals: list[tuple[float, int]] = []
    received = 0
    first_audio: float | None = None
    error: str | None = None
    started = time.perf_counter()
    try:
        async with (
            asyncio.timeout(deadline_seconds),
            client.stream(
                "POST", SPEECH_PATH, json=body, headers={"accept-encoding": "identity", **headers}
            ) as response,
        ):
            if response.status_code != 200:
                text = (await response.aread()).decode("utf-8", "replace")
                error = f"HTTP {response.status_code}: {text[:ERROR_BODY_CHARS]}"
            else:
                async for chunk in response.aiter_bytes():
                    if not chunk:
                        continue
                    now = time.perf_counter() - started
                    first_audio = now if first_audio is None else first_audio
                    before = received // PCM16_BYTES_PER_SAMPLE
                    received += len(chunk)
                    arrivals.append((now, received // PCM16_BYTES_PER_SAMPLE - before))
    except TimeoutError:
        error = f"DEADLINE_EXCEEDED: no end of body within {deadline_seconds:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    record = record_from_arrivals(
        arrivals,
        HTTP_SAMPLE_RATE,
        started=started,
        ended=time.perf_counter(),
        run_start=run_start,
        server_first_audio_seconds=0.0,
        server_semantic_tokens=0,
        server_samples=0,
        error=error,
        **fields,
    )
    return dataclasses.replace(record, ttfa_seconds=first_audio)
