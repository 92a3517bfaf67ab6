"""Decode lanes on a CPU: N forwards one after another on one thread against N at once on N lanes.

`python -m bench lanes [--size tiny|full] [--rows 1,2,4] [--lanes 0]` builds each codec's random
decoder (the packs of `bench decoders`), makes N batches of the longest window the vocoder decodes
(left context + largest chunk + lookahead, random tokens, every row its own stream) and times, per
row count, the N forwards one after another on one thread (`one_lane_ms`) and the same N forwards
started together on N threads of one `DeviceDecoder(lanes=N)` (`lanes_ms`), as the scheduler runs
them, with one torch thread each, after an untimed round of each (the first forward of a shape
pays the kernels' one-time costs). The figure is the median over repeats; `speedup` is one lane's
time over the lanes' time. Nothing else runs meanwhile: this is the lanes' gain on an idle
machine, while `bench vocoder` shows what remains of it beside a busy event loop.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.arguments import comma_ints, comma_names

DEFAULT_OUT = Path(__file__).parent / "results"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=["tiny", "full"], default="tiny", help="random codecs' sizes")
    p.add_argument(
        "--codecs", type=comma_names, default=("bicodec", "s3gen", "snac"), help="e.g. bicodec,snac"
    )
    p.add_argument("--rows", type=comma_ints, default=(1, 2, 4), help="rows per batch, e.g. 1,2,4")
    p.add_argument("--lanes", type=int, default=0, help="lanes to compare with one; 0: the cores")
    p.add_argument("--repeats", type=int, default=5, help="timed forwards each way; the median is kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DEFAULT_OUT))


def time_batches(subject: Any, rows: list[int], lanes: int, repeats: int, seed: int) -> list[dict[str, Any]]:
    """Per row count: milliseconds of `lanes` forwards one after another on one thread and at once
    on `lanes` threads, and their ratio."""
    import torch

    from voxserve.vocoder.batch import Batch
    from voxserve.vocoder.device_decode import DeviceDecoder

    codec, policy = subject.codec, subject.policy
    decoder = DeviceDecoder(codec, "cpu", graphs=False, lanes=lanes)
    generator = torch.Generator().manual_seed(seed)
    # A first window as long as the longest steady one: the length the saturated vocoder decodes.
    chunk = policy.left_context_tokens + policy.max_chunk_tokens
    figures = []
    with ThreadPoolExecutor(lanes, thread_name_prefix="lane") as pool:

        def one_lane(batches: list[Any]) -> None:
            for batch in batches:
                decoder.decode(batch.rows)

        def all_lanes(batches: list[Any]) -> None:
            for future in [pool.submit(decoder.decode, batch.rows) for batch in batches]:
                future.result()

        for count in rows:
            batches = [
                Batch.random(
                    codec, count, chunk, policy.lookahead_tokens, subject.conditioning, seed, generator
                )
                for _ in range(lanes)
            ]
            timings: dict[str, list[float]] = {"one_lane": [], "lanes": []}
            one_lane(batches)
            all_lanes(batches)
            for _ in range(repeats):
                for way, run in (("one_lane", one_lane), ("lanes", all_lanes)):
                    started = time.perf_counter()
                    run(batches)
                    timings[way].append(time.perf_counter() - started)
            one_ms = statistics.median(timings["one_lane"]) * 1e3
            lanes_ms = statistics.median(timings["lanes"]) * 1e3
            figures.append(
                {
                    "rows": count,
                    "forwards": lanes,
                    "window_tokens": policy.longest_window,
                    "one_lane_ms": one_ms,
                    "lanes_ms": lanes_ms,
                    "speedup": one_ms / lanes_ms,
                }
            )
    return figures


def run_from_args(args: argparse.Namespace) -> int:
    import torch

    from bench.decoders import BUILDERS, DecoderSettings, torch_threads
    from bench.report import machine_facts
    from bench.streamed import write_result
    from voxserve.vocoder.config import available_cores

    codecs, rows = args.codecs, list(args.rows)
    lanes = args.lanes or available_cores()
    if lanes < 2 or args.repeats < 1 or not rows or min(rows) < 1:
        raise SystemExit("lanes must be >= 2 (this machine's cores, or --lanes), repeats and rows >= 1")
    settings = DecoderSettings(size=args.size, codecs=codecs, seed=args.seed)
    result: dict[str, Any] = {
        "benchmark": "decode-lanes",
        "machine": machine_facts(),
        "settings": {"size": args.size, "rows": rows, "lanes": lanes, "repeats": args.repeats},
        "torch": torch.__version__,
        "codecs": {},
    }
    with torch_threads(1):
        for name in codecs:
            with tempfile.TemporaryDirectory(prefix=f"lanes-{name}-") as scratch:
                subject = BUILDERS[name](Path(scratch), settings)
                result["codecs"][name] = time_batches(subject, rows, lanes, args.repeats, args.seed)
    written = write_result(Path(args.out), "decode-lanes", result)
    print(
        f"{lanes} forwards one after another against at once on {lanes} lanes, ms (median of {args.repeats})"
    )
    for name, figures in result["codecs"].items():
        for f in figures:
            print(
                f"{name:<8} rows {f['rows']:>2} x {f['window_tokens']} tokens: "
                f"{f['one_lane_ms']:8.1f} {f['lanes_ms']:8.1f}  {f['speedup']:.2f}x"
            )
    print(f"\nwritten: {written['written']}")
    return 0
