"""Closed-loop load against any server of the Speech API: N clients, each starting its next
request as soon as its previous one ends, all over one shared grpc.aio channel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc

from bench.corpus import Text, pick
from bench.playback import underruns
from voxserve.common.request_id import METADATA_KEY
from voxserve.v1 import generator_pb2, speech_pb2, speech_pb2_grpc

PCM16_BYTES_PER_SAMPLE = 2
CONNECT_TIMEOUT_SECONDS = 30.0


@dataclass
class StreamRecord:
    """One request as the client saw it. Times are seconds from `time.perf_counter`."""

    request: int
    """Index of the request in the run, in start order; its sampling seed is seed_base + this."""
    client: int
    text_id: str
    kind: str
    concurrency: int
    start_seconds: float
    """When the request was sent, from the start of the run."""
    ttfa_seconds: float | None
    """Request sent -> first audio message received; None when no audio arrived."""
    total_seconds: float
    """Request sent -> stream closed."""
    audio_seconds: float
    real_time_factor: float | None
    """total / audio seconds; None when no audio arrived."""
    underruns: int
    underrun_wait_ms: float
    samples: int
    server_first_audio_seconds: float
    server_semantic_tokens: int
    server_samples: int
    error: str | None = None
    """`<status code name>: <details>` when the call failed."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StreamRecord:
        return cls(**data)


@dataclass
class Claims:
    """Request indexes for a closed loop, until `requests` are out or `duration` has passed.

    One event loop: a claim cannot interleave with another client's claim."""

    requests: int | None
    duration: float | None
    start: float = field(default_factory=time.perf_counter)
    issued: int = 0

    def next(self) -> int | None:
        if self.requests is not None and self.issued >= self.requests:
            return None
        if self.duration is not None and time.perf_counter() - self.start >= self.duration:
            return None
        self.issued += 1
        return self.issued - 1


@dataclass
class LoadResult:
    records: list[StreamRecord] = field(default_factory=list)
    wall_seconds: float = 0.0
    """From the start of the run until the last stream closed."""

    def to_dict(self) -> dict[str, Any]:
        return {"records": [r.to_dict() for r in self.records], "wall_seconds": self.wall_seconds}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadResult:
        return cls([StreamRecord.from_dict(r) for r in data["records"]], data["wall_seconds"])


async def closed_loop(
    concurrency: int,
    claim: Callable[[], int | None],
    run_one: Callable[[int, int, int], Awaitable[StreamRecord]],
) -> list[StreamRecord]:
    """`concurrency` clients; each takes the next index from `claim()` and runs
    `run_one(index, client, turn)`, until `claim()` says None. Records sorted by index."""
    records: list[StreamRecord] = []

    async def client(number: int) -> None:
        turn = 0
        while (index := claim()) is not None:
            records.append(await run_one(index, number, turn))
            turn += 1

    await asyncio.gather(*(client(n) for n in range(concurrency)))
    return sorted(records, key=lambda r: r.request)


def record_from_arrivals(
    arrivals: Sequence[tuple[float, int]],
    sample_rate: int,
    *,
    started: float,
    ended: float,
    run_start: float,
    **fields: Any,
) -> StreamRecord:
    """A stream's record from its audio arrivals ((seconds after `started`, samples), in order):
    TTFA, audio length, real-time factor and playback underruns; `fields` give the rest."""
    samples = sum(n for _, n in arrivals)
    audio_seconds = samples / sample_rate if sample_rate else 0.0
    total = ended - started
    playback = underruns(arrivals, sample_rate) if sample_rate else None
    return StreamRecord(
        start_seconds=started - run_start,
        ttfa_seconds=next((t for t, n in arrivals if n > 0), None),
        total_seconds=total,
        audio_seconds=audio_seconds,
        real_time_factor=total / audio_seconds if audio_seconds else None,
        underruns=playback.count if playback else 0,
        underrun_wait_ms=playback.wait_seconds * 1000 if playback else 0.0,
        samples=samples,
        **fields,
    )


async def run_load(
    address: str,
    concurrency: int,
    *,
    texts: Sequence[Text],
    requests: int | None = None,
    duration: float | None = None,
    voice: str = "default",
    max_tokens: int | None = None,
    sample_rate: int = 0,
    seed_base: int = 0,
    # The per-call gRPC deadline, not a bound on the whole run (which `duration` sets).
    timeout: float = 300,  # noqa: ASYNC109
) -> LoadResult:
    """Run `concurrency` closed-loop clients until `requests` requests have been started or
    `duration` seconds have passed (whichever comes first when both are given). No request
    starts after the duration; those in flight run to the end. `sample_rate` 0 is the voice's own."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if requests is None and duration is None:
        raise ValueError("give requests, duration or both; otherwise the run never ends")
    if not texts:
        raise ValueError("no texts")

    async with grpc.aio.insecure_channel(address) as channel:
        # Connect before the clock starts so the first requests' TTFA is not the TCP handshake.
        await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_SECONDS)
        stub = speech_pb2_grpc.SpeechStub(channel)
        claims = Claims(requests, duration)
        run_start = claims.start

        async def one(index: int, number: int, turn: int) -> StreamRecord:
            text = pick(texts, number, turn)
            sampling = generator_pb2.SamplingParams(seed=seed_base + index)
            if max_tokens is not None:
                sampling.max_tokens = max_tokens
            request = speech_pb2.SynthesizeRequest(
                text=text.text,
                voice=voice,
                encoding=speech_pb2.PCM16,
                sampling=sampling,
                sample_rate=sample_rate,
            )
            return await _one_stream(stub, request, timeout, run_start, index, number, text, concurrency)

        records = await closed_loop(concurrency, claims.next, one)
        wall = time.perf_counter() - run_start

    return LoadResult(records=records, wall_seconds=wall)


async def _one_stream(
    stub: speech_pb2_grpc.SpeechStub,
    request: speech_pb2.SynthesizeRequest,
    deadline_seconds: float,
    run_start: float,
    index: int,
    client: int,
    text: Text,
    concurrency: int,
) -> StreamRecord:
    arrivals: list[tuple[float, int]] = []
    sample_rate = 0
    summary = speech_pb2.Summary()
    error: str | None = None
    # Request ids that name the request make server logs easy to match against the records.
    metadata = ((METADATA_KEY, f"bench-c{concurrency}-r{index}"),)
    started = time.perf_counter()
    try:
        call = stub.Synthesize(request, timeout=deadline_seconds, metadata=metadata)
        async for response in call:
            if response.HasField("audio"):
                arrivals.append(
                    (time.perf_counter() - started, len(response.audio.data) // PCM16_BYTES_PER_SAMPLE)
                )
                sample_rate = sample_rate or response.audio.sample_rate
            elif response.HasField("summary"):
                summary = response.summary
    except grpc.aio.AioRpcError as exc:
        error = f"{exc.code().name}: {exc.details()}"
    return record_from_arrivals(
        arrivals,
        sample_rate,
        started=started,
        ended=time.perf_counter(),
        run_start=run_start,
        request=index,
        client=client,
        text_id=text.id,
        kind=text.kind,
        concurrency=concurrency,
        server_first_audio_seconds=summary.first_audio_seconds,
        server_semantic_tokens=summary.semantic_tokens,
        server_samples=summary.samples,
        error=error,
    )
