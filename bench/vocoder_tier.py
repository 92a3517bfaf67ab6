"""Vocoder-tier load: the vocoder on its own, fed as a fast generator would feed it.

N closed-loop clients each open `Vocoder.Decode` streams one after another. A stream sends a
random voice and random tokens in frames, paced as a generator producing `rate` x real time
(BiCodec: 50 tokens per second of audio, S3Gen 25, SNAC 11.7 frames of 7 codes), then End, and
plays the audio it gets back through the real-time player of `bench.playback`. The codec is the
pack's (`bench.tier_codec` holds what the client needs of it). With the language model out of
the loop, what the figures measure is the vocoder tier alone: its first-audio latency on top of
token arrival, underruns and how many streams it sustains. Systems, one after another on the
same pack and tokens:

- `voxserve`: the vocoder service (`python -m voxserve.vocoder`), batching across streams;
- `voxserve-bs1`: the same service with `VOXSERVE_VOCODER_BATCHING=false`;
- `baseline`: the seed's per-request decode loop behind the same API (`bench.baseline_vocoder`).

First audio needs the first chunk's tokens plus the lookahead to arrive (voxserve: 10 + the
measured context; the baseline: 10 and no lookahead), so TTFA has a floor set by `rate`. With
`stop_when_saturated`, a system's higher levels are skipped after its first level with an
underrun or an error (it no longer sustains the load, and a saturated level is the slowest).
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
    sustained_streams,
    write_json,
)
from bench.runner import format_level, serving_process
from bench.tier_codec import TierCodec, tier_codec
from voxserve.families.pack import Pack
from voxserve.stack import free_port
from voxserve.v1 import vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder.config import VocoderConfig

SYSTEMS = ("voxserve", "voxserve-bs1", "baseline")
# Audio per stream when the settings name no token count.
STREAM_SECONDS = 5.0


@dataclass(frozen=True)
class TierSettings:
    concurrency: tuple[int, ...] = (1, 4, 8, 16, 32, 48, 64)
    systems: tuple[str, ...] = SYSTEMS
    streams_per_client: int = 2
    tokens: int = 0
    """Tokens per stream; 0: 5 s of audio (BiCodec 250, S3Gen 125, SNAC 59 frames)."""
    rate: float = 2.0
    """Token arrival as a multiple of real time (2.0: BiCodec 100 tokens per second per stream)."""
    frame_tokens: int = 0
    """Tokens per frame message; 0: 100 ms of audio (BiCodec 5, S3Gen 3, SNAC 2 frames)."""
    device: str = "cpu"
    seed: int = 0
    request_timeout: float = 300.0
    """Each stream's gRPC deadline, in seconds."""
    stop_when_saturated: bool = False
    label: str = ""
    """Part of the output files' names (`vocoder-tier-<label>-<stamp>`), e.g. the codec."""

    def stream_tokens(self, codec: TierCodec) -> int:
        return self.tokens or codec.tokens_for(STREAM_SECONDS)

    def message_tokens(self, codec: TierCodec) -> int:
        return self.frame_tokens or codec.frame_tokens()


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
    log_name = "-".join(part for part in ("vocoder-tier", settings.label, name) if part)
    with serving_process(command, port, log_dir / f"{log_name}.log", env) as address:
        yield address


async def one_stream(
    stub: vocoder_pb2_grpc.VocoderStub,
    settings: TierSettings,
    codec: TierCodec,
    *,
    index: int,
    client: int,
    concurrency: int,
    run_start: float,
) -> StreamRecord:
    rng = random.Random(settings.seed * 1_000_003 + index)
    start = codec.start(rng, seed=settings.seed * 1_000_003 + index)
    count = settings.stream_tokens(codec)
    tokens = codec.random_ids(rng, count)
    frame_tokens = settings.message_tokens(codec)
    frame_ids = frame_tokens * codec.codes_per_token
    frame_seconds = frame_tokens / (codec.tokens_per_second * settings.rate)
    arrivals: list[tuple[float, int]] = []
    sample_rate = 0
    error: str | None = None
    started = time.perf_counter()
    call = stub.Decode(timeout=settings.request_timeout)

    async def write() -> None:
        await call.write(vocoder_pb2.DecodeRequest(start=start))
        for i in range(0, len(tokens), frame_ids):
            # Frame k is due when a generator at `rate` would have produced its last token.
            due = started + (i // frame_ids + 1) * frame_seconds
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            frame = vocoder_pb2.DecodeFrame(token_ids=tokens[i : i + frame_ids])
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
        text_id=f"tokens-{count}",
        kind="vocoder-tier",
        concurrency=concurrency,
        server_first_audio_seconds=0.0,
        server_semantic_tokens=count,
        server_samples=sum(n for _, n in arrivals),
        error=error,
    )


async def run_tier_load(
    address: str, concurrency: int, settings: TierSettings, streams: int, codec: TierCodec
) -> LoadResult:
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
                stub,
                settings,
                codec,
                index=index,
                client=number,
                concurrency=concurrency,
                run_start=run_start,
            )

        records = await closed_loop(concurrency, claim, one)
        wall = time.perf_counter() - run_start
    return LoadResult(records=records, wall_seconds=wall)


def measure(address: str, settings: TierSettings, codec: TierCodec) -> list[LevelSummary]:
    asyncio.run(run_tier_load(address, 2, settings, streams=2, codec=codec))  # warm-up
    levels = []
    for concurrency in settings.concurrency:
        streams = concurrency * settings.streams_per_client
        result = asyncio.run(run_tier_load(address, concurrency, settings, streams, codec))
        level = summarize(result, concurrency)
        levels.append(level)
        print(f"  c={concurrency}: {format_level(level)}", flush=True)
        if settings.stop_when_saturated and sustained_streams([level]) == 0:
            print("  saturated: higher levels skipped", flush=True)
            break
    return levels


def run_tier(pack: Pack, settings: TierSettings, out_dir: Path) -> BenchRun:
    out_dir.mkdir(parents=True, exist_ok=True)
    codec = tier_codec(pack.family.codec)
    systems: dict[str, list[LevelSummary]] = {}
    for name in settings.systems:
        print(f"{name}: starting", flush=True)
        with running_vocoder(name, pack, settings, out_dir / "logs") as address:
            systems[name] = measure(address, settings, codec)
    run = BenchRun(
        machine=machine_facts(),
        git_commit=git_commit(),
        pack={"path": str(pack.root), "family": pack.family.name, "codec": codec.name},
        settings={"benchmark": "vocoder-tier", "stream_tokens": settings.stream_tokens(codec)}
        | asdict(settings),
        systems=systems,
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = out_dir / "-".join(part for part in ("vocoder-tier", settings.label, stamp) if part)
    write_json(run, base.with_suffix(".json"))
    plot(run, base.with_suffix(".png"))
    base.with_suffix(".md").write_text(markdown_table(run) + "\n", encoding="utf-8")
    print(markdown_table(run))
    print(f"\nwrote {base}.json, .png and .md")
    return run
