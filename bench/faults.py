"""Bounded fault and load scripts against a local stack on 127.0.0.1.

leak: N streams (default 1,000) cancelled at random points (before first audio, after a few
      chunks, or by a short deadline); afterwards every service's own count of live work must be
      zero, and each service's resident memory is compared before and after.
overload: the gateway capped at N streams (`VOXSERVE_GATEWAY_MAX_STREAMS`); N clients stream while
      N more keep calling: how fast the extra calls are refused, and whether the admitted
      streams stall more than N clients alone (run first, side by side).
soak: clients at a fixed concurrency (80% of the sustained-stream capacity measured by
      `bench run`) for a fixed time, 5% of them cancelling at a random point; records errors other
      than the cancellations, playback underruns of the streams that ran to the end, and each
      service's resident memory every 10 s.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bench.corpus import load_corpus
from bench.playback import Playback, underruns
from voxserve.scrape import scrape
from voxserve.stack import SERVICES, LocalStack, Ports
from voxserve.v1 import generator_pb2, speech_pb2, speech_pb2_grpc

LIVE_GAUGES = {
    "gateway": "voxserve_gateway_active_requests",
    "generator": "voxserve_generator_engine_requests",
    "vocoder": "voxserve_vocoder_active_streams",
}


def percentiles_ms(values: list[float]) -> list[float | None]:
    ordered = sorted(values)
    if not ordered:
        return [None, None]
    return [round(1000 * ordered[int(len(ordered) * q)], 1) for q in (0.5, 0.95)]


def rss_mib(stack: LocalStack) -> dict[str, float]:
    """Resident memory of each service process, MiB."""
    sizes = {}
    for service, process in stack.processes.items():
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes[service] = round(int(line.split()[1]) / 1024, 1)
    return sizes


def live_work(stack: LocalStack) -> dict[str, float]:
    return {s: scrape(stack.ports.metrics_url(s))[LIVE_GAUGES[s]] for s in SERVICES}


async def wait_idle(stack: LocalStack, seconds: float = 30) -> dict[str, float]:
    deadline = time.monotonic() + seconds
    while any(live_work(stack).values()) and time.monotonic() < deadline:  # noqa: ASYNC110 - metrics are polled
        await asyncio.sleep(0.2)
    return live_work(stack)


async def cancelled_stream(stub: speech_pb2_grpc.SpeechStub, rng: random.Random) -> str:
    """One stream cut short at a random point; returns how."""
    way = rng.choice(["before audio", "after chunks", "deadline"])
    request = speech_pb2.SynthesizeRequest(
        text="Cut me short somewhere along the way.",
        sampling=generator_pb2.SamplingParams(max_tokens=300),
    )
    call = stub.Synthesize(request, timeout=rng.uniform(0.05, 0.6) if way == "deadline" else 60)
    try:
        if way == "before audio":
            await asyncio.sleep(rng.uniform(0, 0.05))
        elif way == "after chunks":
            for _ in range(rng.randint(1, 4)):
                await call.read()
        else:
            async for _ in call:
                pass
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            return f"error {exc.code().name}"
    call.cancel()
    return way


async def leak(stack: LocalStack, streams: int, concurrency: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    async with grpc.aio.insecure_channel(stack.ports.address("gateway")) as channel:
        stub = speech_pb2_grpc.SpeechStub(channel)
        for _ in range(20):  # warm-up, so that the baseline memory holds the steady-state caches
            await cancelled_stream(stub, random.Random(rng.random()))
        await wait_idle(stack)
        before = rss_mib(stack)
        ways: dict[str, int] = {}
        # Memory after each quarter: allocator and cache warm-up levels off, a leak keeps growing.
        quarters: list[dict[str, float]] = []
        started = time.monotonic()
        for _ in range(4):
            seeds = iter([rng.random() for _ in range(streams // 4)])

            async def client() -> None:
                for one in seeds:  # noqa: B023 - each quarter's clients share its seeds
                    way = await cancelled_stream(stub, random.Random(one))
                    ways[way] = ways.get(way, 0) + 1

            await asyncio.gather(*(client() for _ in range(concurrency)))
            await wait_idle(stack)
            quarters.append(rss_mib(stack))
        elapsed = time.monotonic() - started
    live = await wait_idle(stack)
    after = quarters[-1]

    def growth(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {s: round(100 * (b[s] - a[s]) / a[s], 1) for s in a}

    return {
        "streams": sum(ways.values()),
        "concurrency": concurrency,
        "seconds": round(elapsed, 1),
        "how_they_ended": ways,
        "live_after": live,
        "rss_mib_before": before,
        "rss_mib_after_each_quarter": quarters,
        "rss_growth_percent": growth(before, after),
        "rss_growth_second_half_percent": growth(quarters[1], after),
    }


@dataclass(frozen=True)
class StreamOutcome:
    playback: Playback | None
    """None when the call failed."""
    error: str | None
    first_audio_seconds: float | None


async def admitted_stream(stub: speech_pb2_grpc.SpeechStub, text: str, seed: int) -> StreamOutcome:
    """One full stream, played back as it arrives."""
    request = speech_pb2.SynthesizeRequest(
        text=text, sampling=generator_pb2.SamplingParams(max_tokens=250, seed=seed)
    )
    sent = time.monotonic()
    arrivals: list[tuple[float, int]] = []
    try:
        async for response in stub.Synthesize(request, timeout=120):
            if response.HasField("audio"):
                arrivals.append((time.monotonic() - sent, len(response.audio.data) // 2))
    except grpc.aio.AioRpcError as exc:
        return StreamOutcome(None, f"{exc.code().name}: {exc.details()}", None)
    return StreamOutcome(underruns(arrivals, 16000), None, arrivals[0][0] if arrivals else None)


async def soak(stack: LocalStack, concurrency: int, seconds: float, seed: int) -> dict[str, Any]:
    texts = [t.text for t in load_corpus() if t.kind in ("short", "medium")]
    rng = random.Random(seed)
    counts = {"completed": 0, "cancelled": 0, "errors": 0, "underruns": 0, "underrun_streams": 0}
    errors: list[str] = []
    memory: list[dict[str, Any]] = []
    stalls: list[dict[str, float]] = []
    first_audio: list[float] = []
    started = time.monotonic()

    async def client(stub: speech_pb2_grpc.SpeechStub, number: int) -> None:
        local = random.Random(rng.random())
        turn = 0
        while time.monotonic() - started < seconds:
            turn += 1
            if local.random() < 0.05:
                await cancelled_stream(stub, local)
                counts["cancelled"] += 1
                continue
            outcome = await admitted_stream(
                stub, texts[(number + turn) % len(texts)], local.randrange(1 << 30)
            )
            if outcome.playback is None:
                counts["errors"] += 1
                errors.append(outcome.error or "")
                continue
            counts["completed"] += 1
            counts["underruns"] += outcome.playback.count
            counts["underrun_streams"] += bool(outcome.playback.count)
            first_audio.append(outcome.first_audio_seconds or 0.0)
            stalls.extend(
                {
                    "at_wall_seconds": round(time.monotonic() - started, 2),
                    "at_audio_seconds": round(stall.audio_seconds, 3),
                    "wait_ms": round(1000 * stall.wait_seconds, 1),
                    "first_audio_ms": round(1000 * (outcome.first_audio_seconds or 0.0), 1),
                }
                for stall in outcome.playback.stalls
            )

    async def watch_memory() -> None:
        while time.monotonic() - started < seconds:
            memory.append({"t": round(time.monotonic() - started), **rss_mib(stack)})
            await asyncio.sleep(10)

    async with grpc.aio.insecure_channel(stack.ports.address("gateway")) as channel:
        stub = speech_pb2_grpc.SpeechStub(channel)
        await asyncio.gather(watch_memory(), *(client(stub, n) for n in range(concurrency)))
    live = await wait_idle(stack)
    warm = [m for m in memory if m["t"] >= 60] or memory
    flat = {
        s: round(100 * (max(m[s] for m in warm) - min(m[s] for m in warm)) / min(m[s] for m in warm), 1)
        for s in SERVICES
    }
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        **counts,
        "error_examples": errors[:5],
        "first_audio_ms_p50_p95": percentiles_ms(first_audio),
        "stalls": stalls,
        "live_after": live,
        "rss_spread_after_warmup_percent": flat,
        "rss_mib": memory,
    }


async def overload(stack: LocalStack, limit: int, seconds: float) -> dict[str, Any]:
    texts = [t.text for t in load_corpus() if t.kind == "medium"]

    async def phase(extra: int) -> dict[str, Any]:
        started = time.monotonic()
        stalls, errors, streams = 0, [], 0
        refusals: list[float] = []
        other: list[str] = []
        async with grpc.aio.insecure_channel(stack.ports.address("gateway")) as channel:
            stub = speech_pb2_grpc.SpeechStub(channel)

            async def admitted(number: int) -> None:
                nonlocal stalls, streams
                turn = 0
                while time.monotonic() - started < seconds:
                    turn += 1
                    outcome = await admitted_stream(stub, texts[(number + turn) % len(texts)], turn)
                    if outcome.playback is None:  # an extra caller took the place just given back
                        errors.append(outcome.error or "")
                        await asyncio.sleep(0.05)
                        continue
                    stalls, streams = stalls + outcome.playback.count, streams + 1

            async def pushing() -> None:
                await asyncio.sleep(1.0)  # the admitted clients hold every place first
                while time.monotonic() - started < seconds:
                    sent = time.monotonic()
                    error = (await admitted_stream(stub, texts[0], 0)).error
                    if error and error.startswith("RESOURCE_EXHAUSTED"):
                        refusals.append(time.monotonic() - sent)
                    else:
                        other.append(error or "served")
                    await asyncio.sleep(0.05)

            await asyncio.gather(*(admitted(n) for n in range(limit)), *(pushing() for _ in range(extra)))
        refusals.sort()
        return {
            "admitted_streams": streams,
            "admitted_stalls": stalls,
            "admitted_refused_between_streams": len(errors),
            "refused": len(refusals),
            "refused_ms_p50": round(1000 * refusals[len(refusals) // 2], 2) if refusals else None,
            "refused_ms_p99": round(1000 * refusals[int(len(refusals) * 0.99)], 2) if refusals else None,
            "refused_ms_max": round(1000 * refusals[-1], 2) if refusals else None,
            "extra_calls_served_or_other": len(other),
        }

    return {
        "limit": limit,
        "seconds_per_phase": seconds,
        "alone": await phase(0),
        "with_2x": await phase(limit),
    }


def run_faults(pack: Path, out_dir: Path, what: str, **options: Any) -> dict[str, Any]:
    seed = options.pop("seed", 0)
    env = {"VOXSERVE_GATEWAY_MAX_STREAMS": str(options["concurrency"])} if what == "overload" else {}
    with LocalStack(pack, Ports.free(), log_dir=out_dir / "logs", env=env) as stack:
        if what == "leak":
            result = asyncio.run(leak(stack, options["streams"], options["concurrency"], seed))
        elif what == "overload":
            result = asyncio.run(overload(stack, options["concurrency"], options["seconds"]))
        else:
            result = asyncio.run(soak(stack, options["concurrency"], options["seconds"], seed))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"faults-{what}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result
