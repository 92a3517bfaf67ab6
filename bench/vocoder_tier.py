"""Vocoder-tier load: the vocoder on its own, fed as a fast generator would feed it.

N closed-loop clients each open `Vocoder.Decode` streams one after another. A stream sends a
random voice and random tokens in frames, paced as a generator producing `rate` x real time
(BiCodec: 50 tokens per second of audio), then End, and plays the audio it gets back through the
real-time player of `bench.playback`. With the language model out of the loop, what the figures
measure is the vocoder tier alone: its first-audio latency on top of token arrival, underruns
and how many streams it sustains. Systems, one after another on the same pack and tokens:

- `voxserve`: the vocoder service (`python -m voxserve.vocoder`), batching across streams;
- `voxserve-bs1`: the same service with `VOXSERVE_VOCODER_BATCHING=false`;
- `baseline`: the seed's per-request decode loop behind the same API (`bench.baseline_vocoder`).

First audio needs the first chunk's tokens plus the lookahead to arrive (voxserve: 10 + the
measured context; the baseline: 10 and no lookahead), so TTFA has a floor set by `rate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc

from bench.load import CONNECT_TIMEOUT_SECONDS, LoadResult, StreamRecord, closed_loop, record_from_arrivals
from bench.report import (
    BenchRun,
    LevelSummary,
    git_commit,
    machine_facts,
    markdown_table,
    plot,
    summarize,
    write_json,
)
from bench.runner import format_level, serving_process
from voxserve.families.pack import Pack
from voxserve.stack import free_port
from voxserve.v1 import vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder.config import VocoderConfig

SYSTEMS = ("voxserve", "voxserve-bs1", "baseline")
TOKENS_PER_SECOND = 50  # BiCodec semantic tokens per second of audio
GLOBAL_VOCAB, SEMANTIC_VOCAB = 4096, 8192


@dataclass(frozen=True)
class TierSettings:
    concurrency: tuple[int, ...] = (1, 4, 8, 16, 32, 48, 64)
    systems: tuple[str, ...] = SYSTEMS
    streams_per_client: int = 2
    tokens: int = 250
    """Tokens per stream (250 = 5 s of audio)."""
    rate: float = 2.0
    """Token arrival as a multiple of real time (2.0: 100 tokens per second per stream)."""
    frame_tokens: int = 5
    device: str = "cpu"
    seed: int = 0
    request_timeout: float = 300.0
    """Each stream's gRPC deadline, in seconds."""


@contextlib.contextmanager
def running_vocoder(name: str, pack: Pack, settings: TierSettings, log_dir: Path) -> Iterator[str]:
    """Start a system's vocoder on a free local port; yield its address; stop it afterwards."""
    port = free_port()
    env = dict(os.environ)
    if name in ("voxserve", "voxserve-bs1"):
        command = [sys.executable, "-m", "voxserve.vocoder"]
        env |= {
            "VOXSERVE_VOCODER_PACK": str(pack.root),
            "VOXSERVE_VOCODER_PORT": str(port),
            "VOXSERVE_VOCODER_METRICS_PORT": "0",
            "VOXSERVE_VOCODER_DEVICE": settings.device,
            "VOXSERVE_VOCODER_MAX_STREAMS": str(max(settings.concurrency) + 1),
            "VOXSERVE_VOCODER_BATCHING": "false" if name == "voxserve-bs1" else "true",
        }
    elif name == "baseline":
        command = [sys.executable, "-m", "bench.baseline_vocoder", "--pack", str(pack.root)]
        command += ["--port", str(port), "--device", settings.device]
        # The vocoder service's thread count, so the systems differ only in their schedule.
        command += ["--torch-threads", str(VocoderConfig().torch_threads)]
    else:
        raise ValueError(f"system {name!r} is unknown; systems: {', '.join(SYSTEMS)}")
    with serving_process(command, port, log_dir / f"vocoder-tier-{name}.log", env) as address:
        yield address


async def one_stream(
    stub: vocoder_pb2_grpc.VocoderStub,
    settings: TierSettings,
    *,
    index: int,
    client: int,
    concurrency: int,
    run_start: float,
) -> StreamRecord:
    rng = random.Random(settings.seed * 1_000_003 + index)
    global_ids = [rng.randrange(GLOBAL_VOCAB) for _ in range(32)]
    tokens = [rng.randrange(SEMANTIC_VOCAB) for _ in range(settings.tokens)]
    frame_seconds = settings.frame_tokens / (TOKENS_PER_SECOND * settings.rate)
    arrivals: list[tuple[float, int]] = []
    sample_rate = 0
    error: str | None = None
    started = time.perf_counter()
    call = stub.Decode(timeout=settings.request_timeout)

    async def write() -> None:
        await call.write(
            vocoder_pb2.DecodeRequest(start=vocoder_pb2.DecodeStart(codec="bicodec", global_ids=global_ids))
        )
        for i in range(0, len(tokens), settings.frame_tokens):
            # Frame k is due when a generator at `rate` would have produced its last token.
            due = started + (i // settings.frame_tokens + 1) * frame_seconds
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            frame = vocoder_pb2.DecodeFrame(token_ids=tokens[i : i + settings.frame_tokens])
            await call.write(vocoder_pb2.DecodeRequest(frame=frame))
        await call.write(vocoder_pb2.DecodeRequest(end=vocoder_pb2.DecodeEnd()))
        await call.done_writing()

    writer = asyncio.create_task(write())
    try:
        async for chunk in call:
            samples = len(chunk.pcm_f32) // 4
            arrivals.append((time.perf_counter() - started, samples))
            sample_rate = sample_rate or chunk.sample_rate
        await writer
    except grpc.aio.AioRpcError as exc:
        error = f"{exc.code().name}: {exc.details()}"
        writer.cancel()
    return record_from_arrivals(
        arrivals,
        sample_rate,
        started=started,
        ended=time.perf_counter(),
        run_start=run_start,
        request=index,
        client=client,
        text_id=f"tokens-{settings.tokens}",
        kind="vocoder-tier",
        concurrency=concurrency,
        server_first_audio_seconds=0.0,
        server_semantic_tokens=settings.tokens,
        server_samples=sum(n for _, n in arrivals),
        error=error,
    )


async def run_tier_load(address: str, concurrency: int, settings: TierSettings, streams: int) -> LoadResult:
    """`concurrency` closed-loop clients until `streams` streams have been started."""
    next_index = 0

    def claim() -> int | None:
        nonlocal next_index
        if next_index >= streams:
            return None
        next_index += 1
        return next_index - 1

    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_SECONDS)
        stub = vocoder_pb2_grpc.VocoderStub(channel)
        run_start = time.perf_counter()

        async def one(index: int, number: int, turn: int) -> StreamRecord:
            return await one_stream(
                stub, settings, index=index, client=number, concurrency=concurrency, run_start=run_start
            )

        records = await closed_loop(concurrency, claim, one)
        wall = time.perf_counter() - run_start
    return LoadResult(records=records, wall_seconds=wall)


def measure(address: str, settings: TierSettings) -> list[LevelSummary]:
    asyncio.run(run_tier_load(address, 2, settings, streams=2))  # warm-up
    levels = []
    for concurrency in settings.concurrency:
        result = asyncio.run(
            run_tier_load(address, concurrency, settings, streams=concurrency * settings.streams_per_client)
        )
        level = summarize(result, concurrency)
        levels.append(level)
        print(f"  c={concurrency}: {format_level(level)}", flush=True)
    return levels


def run_tier(pack: Pack, settings: TierSettings, out_dir: Path) -> BenchRun:
    out_dir.mkdir(parents=True, exist_ok=True)
    systems: dict[str, list[LevelSummary]] = {}
    for name in settings.systems:
        print(f"{name}: starting", flush=True)
        with running_vocoder(name, pack, settings, out_dir / "logs") as address:
            systems[name] = measure(address, settings)
    run = BenchRun(
        machine=machine_facts(),
        git_commit=git_commit(),
        pack={"path": str(pack.root), "family": pack.family.name},
        settings={"benchmark": "vocoder-tier"} | asdict(settings),
        systems=systems,
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = out_dir / f"vocoder-tier-{stamp}"
    write_json(run, base.with_suffix(".json"))
    plot(run, base.with_suffix(".png"))
    base.with_suffix(".md").write_text(markdown_table(run) + "\n", encoding="utf-8")
    print(markdown_table(run))
    print(f"\nwrote {base}.json, .png and .md")
    return run
