"""`python -m bench` (also `voxserve bench`): measure voxserve against the monolithic baseline.

python -m bench run --compare baseline                  # the full comparison on the embedded pack
python -m bench run --concurrency 1,2,4 --systems voxserve --max-tokens 100
python -m bench run --systems voxserve --client grpc,http --concurrency 1,8   # HTTP front vs gRPC
python -m bench vocoder --concurrency 1,8,16,32,64      # the vocoder tier alone, tokens paced at 2x
python -m bench scaling                                 # vocoder compute per audio second, 5 s vs 60 s
python -m bench s3gen                                   # S3Gen streamed vs offline vs prefix re-run
python -m bench snac                                    # SNAC streamed vs offline vs the Orpheus loop
python -m bench decoders --size full                    # each codec: voxserve offline, streamed, upstream
python -m bench lanes                                   # CPU forwards one after another vs at once on lanes
python -m bench long-text                               # 2,000 characters: pipelined segments vs not
python -m bench chatterbox                              # Chatterbox: tokens streamed to the flow vs all first
python -m bench enrolment --size full                   # Spark voice enrolment: encode time for 10 s of audio
python -m bench chatterbox-enrolment --size full        # Chatterbox enrolment, part by part, for 10 s
python -m bench faults leak                             # 1,000 randomly cancelled streams: nothing left live
python -m bench faults overload --seconds 60            # 2x the gateway's limit: refusals, admitted stalls
python -m bench faults soak --seconds 600               # steady load with 5% cancelling: errors, memory
python -m bench report bench/results/run-*.json         # re-render a run's table and plot
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.arguments import comma_ints, comma_names
from bench.chatterbox_enrolment import add_arguments as chatterbox_enrolment_arguments
from bench.decode_lanes import add_arguments as decode_lanes_arguments
from bench.enrolment import add_arguments as enrolment_arguments

DEFAULT_OUT = Path(__file__).parent / "results"
DEFAULT_MAX_TOKENS = 250


def _pack(path: Path | None):  # type: ignore[no-untyped-def]
    from voxserve.random_packs.writer import resolve_pack

    return resolve_pack(path)


def _run_from_args(module: str) -> Callable[[argparse.Namespace], int]:
    """A subcommand run by its module's own `run_from_args`, imported only when it runs."""

    def run(args: argparse.Namespace) -> int:
        return int(importlib.import_module(module).run_from_args(args))

    return run


def cmd_run(args: argparse.Namespace) -> int:
    from bench.runner import SYSTEMS, BenchSettings, run_bench

    systems = args.systems or (SYSTEMS if args.compare == "baseline" else ("voxserve", "voxserve-bs1"))
    if args.max_tokens is None:
        # The HTTP API has no token cap, so a run that compares it leaves every request uncapped.
        args.max_tokens = 0 if "http" in args.client else DEFAULT_MAX_TOKENS
    settings = BenchSettings(
        concurrency=args.concurrency,
        systems=tuple(systems),
        requests_per_client=args.requests_per_client,
        duration=args.duration,
        max_tokens=args.max_tokens or None,
        voice=args.voice,
        baseline_window_tokens=args.baseline_window_tokens,
        device=args.device,
        scaling=not args.no_scaling,
        kinds=args.kinds,
        request_timeout=args.request_timeout,
        clients=args.client,
    )
    run_bench(_pack(args.pack), settings, Path(args.out))
    return 0


def cmd_vocoder(args: argparse.Namespace) -> int:
    from bench.vocoder_tier import SYSTEMS, TierSettings, run_tier

    settings = TierSettings(
        concurrency=args.concurrency,
        systems=args.systems or SYSTEMS,
        streams_per_client=args.streams_per_client,
        tokens=args.tokens,
        rate=args.rate,
        frame_tokens=args.frame_tokens,
        device=args.device,
        request_timeout=args.request_timeout,
        stop_when_saturated=args.stop_when_saturated,
        label=args.label,
    )
    run_tier(_pack(args.pack), settings, Path(args.out))
    return 0


def cmd_scaling(args: argparse.Namespace) -> int:
    from bench.scaling import run_scaling

    print(json.dumps(run_scaling(_pack(args.pack).root, repeats=args.repeats), indent=2))
    return 0


def _codec_stream_benchmark(args: argparse.Namespace, family: str, run: Any) -> int:
    """Run a codec streaming benchmark on `--pack`, or on a tiny random pack of `family`."""
    import tempfile

    from voxserve.families.pack import Pack
    from voxserve.random_packs.writer import write_random_pack

    with tempfile.TemporaryDirectory() as scratch:
        pack = Pack.open(args.pack) if args.pack else write_random_pack(Path(scratch), "tiny", family=family)
        if pack.family.name != family:
            print(
                f"error: {pack.root} is a {pack.family.name} pack; this benchmark needs an {family} pack",
                file=sys.stderr,
            )
            return 2
        durations = tuple(float(d) for d in args.durations.split(","))
        print(json.dumps(run(pack.root, Path(args.out), durations), indent=2))
    return 0


def cmd_snac(args: argparse.Namespace) -> int:
    from bench.snac_stream import run_snac_stream

    return _codec_stream_benchmark(args, "orpheus", run_snac_stream)


def cmd_s3gen(args: argparse.Namespace) -> int:
    from bench.s3gen_stream import run_s3gen_stream

    return _codec_stream_benchmark(args, "s3", run_s3gen_stream)


def cmd_long_text(args: argparse.Namespace) -> int:
    from bench.long_text import run_long_text

    result = run_long_text(
        _pack(args.pack).root, Path(args.out), chars=args.chars, max_tokens=args.max_tokens or None
    )
    print(json.dumps(result, indent=2))
    return 0


def cmd_chatterbox(args: argparse.Namespace) -> int:
    import tempfile

    from bench.chatterbox_pipeline import run_chatterbox_pipeline, table
    from voxserve.families.pack import Pack
    from voxserve.random_packs.writer import write_random_pack

    with tempfile.TemporaryDirectory() as scratch:
        if args.pack:
            pack = Pack.open(args.pack)
        else:
            pack = write_random_pack(Path(scratch), "tiny", seed=args.pack_seed, family="chatterbox")
        if pack.family.name != "chatterbox":
            print(
                f"error: {pack.root} is a {pack.family.name} pack; this benchmark needs a chatterbox pack",
                file=sys.stderr,
            )
            return 2
        result = run_chatterbox_pipeline(
            pack.root, Path(args.out), runs=args.runs, tokens=args.tokens, seed=args.seed, kind=args.kind
        )
    print(table(result))
    print(f"\nwritten: {result['written']}")
    return 0


def cmd_faults(args: argparse.Namespace) -> int:
    from bench.faults import run_faults

    result = run_faults(
        _pack(args.pack).root,
        Path(args.out),
        args.what,
        streams=args.streams,
        concurrency=args.concurrency,
        seconds=args.seconds,
    )
    print(json.dumps({k: v for k, v in result.items() if k != "rss_mib"}, indent=2))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report import markdown_table, plot, read_json

    run = read_json(args.json)
    png = Path(args.json).with_suffix(".png")
    plot(run, png)
    print(markdown_table(run))
    print(f"\nplot: {png}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the load benchmark on every system and write a report")
    run.add_argument("--pack", type=Path, default=None, help="model pack; default: the embedded tiny pack")
    run.add_argument(
        "--concurrency", type=comma_ints, default=(1, 2, 4, 8, 16), help="levels, e.g. 1,2,4,8,16"
    )
    run.add_argument(
        "--compare",
        choices=["baseline", "none"],
        default="baseline",
        help="baseline: voxserve, voxserve-bs1 and the monolithic baseline in one run",
    )
    run.add_argument(
        "--systems", type=comma_names, default=None, help="explicit systems (overrides --compare)"
    )
    run.add_argument("--requests-per-client", type=int, default=2)
    run.add_argument("--duration", type=float, default=None, help="seconds per level instead of a count")
    run.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help=f"semantic tokens per request (0: the gateway's default cap); default {DEFAULT_MAX_TOKENS}, "
        "0 with --client http",
    )
    run.add_argument(
        "--client",
        type=comma_names,
        default=("grpc",),
        help="how requests reach the systems: grpc, http or grpc,http (HTTP POST /v1/audio/speech "
        "beside gRPC on the same running system, compared per level; gateway-fronted systems only)",
    )
    run.add_argument("--voice", default="default")
    run.add_argument("--kinds", type=comma_names, default=(), help="corpus groups: short,medium,long,hindi")
    run.add_argument(
        "--baseline-window-tokens",
        type=int,
        default=None,
        help="baseline re-decodes only the last N tokens (e.g. 128) instead of all",
    )
    run.add_argument("--device", default="cpu", help="where the vocoder and the baseline decode, e.g. cuda:0")
    run.add_argument("--no-scaling", action="store_true", help="skip the vocoder scaling figure")
    run.add_argument(
        "--request-timeout", type=float, default=300.0, help="each request's gRPC deadline in seconds"
    )
    run.add_argument("--out", default=str(DEFAULT_OUT))
    run.set_defaults(func=cmd_run)

    vt = sub.add_parser("vocoder", help="the vocoder tier alone: token frames paced as a fast generator")
    vt.add_argument("--pack", type=Path, default=None, help="model pack; default: the embedded tiny pack")
    vt.add_argument("--concurrency", type=comma_ints, default=(1, 4, 8, 16, 32, 48, 64))
    vt.add_argument(
        "--systems", type=comma_names, default=None, help="default: voxserve,voxserve-bs1,baseline"
    )
    vt.add_argument("--streams-per-client", type=int, default=2)
    vt.add_argument(
        "--tokens", type=int, default=0, help="tokens per stream; 0: 5 s of audio (BiCodec 250, S3Gen 125)"
    )
    vt.add_argument("--rate", type=float, default=2.0, help="token arrival as a multiple of real time")
    vt.add_argument("--frame-tokens", type=int, default=0, help="tokens per frame; 0: 100 ms of audio")
    vt.add_argument("--device", default="cpu", help="where every system decodes, e.g. cuda:0")
    vt.add_argument(
        "--stop-when-saturated",
        action="store_true",
        help="skip a system's higher levels after its first level with an underrun or an error",
    )
    vt.add_argument("--label", default="", help="part of the output files' names, e.g. the codec")
    vt.add_argument(
        "--request-timeout", type=float, default=300.0, help="each stream's gRPC deadline in seconds"
    )
    vt.add_argument("--out", default=str(DEFAULT_OUT))
    vt.set_defaults(func=cmd_vocoder)

    sc = sub.add_parser("scaling", help="vocoder compute per audio second for 5 s and 60 s utterances")
    sc.add_argument("--pack", type=Path, default=None)
    sc.add_argument("--repeats", type=int, default=3)
    sc.set_defaults(func=cmd_scaling)

    s3 = sub.add_parser("s3gen", help="S3Gen streaming: cost at 5 s vs 60 s, closeness to offline, seams")
    s3.add_argument("--pack", type=Path, default=None, help="an s3 pack; default: a tiny random one")
    s3.add_argument("--durations", default="5,60", help="utterance lengths in seconds")
    s3.add_argument("--out", default=str(DEFAULT_OUT))
    s3.set_defaults(func=cmd_s3gen)

    sn = sub.add_parser(
        "snac", help="SNAC (Orpheus) streaming: exact samples, closeness to offline, vs the reference loop"
    )
    sn.add_argument("--pack", type=Path, default=None, help="an orpheus pack; default: a tiny random one")
    sn.add_argument("--durations", default="5,30", help="utterance lengths in seconds")
    sn.add_argument("--out", default=str(DEFAULT_OUT))
    sn.set_defaults(func=cmd_snac)

    dc = sub.add_parser(
        "decoders", help="decode time per audio second: voxserve offline and streamed vs the upstream package"
    )
    dc.add_argument("--size", choices=["tiny", "full"], default="full", help="random codecs' sizes")
    dc.add_argument("--seconds", type=float, default=10.0, help="length of the random utterance")
    dc.add_argument("--repeats", type=int, default=3, help="timed decodes each way; the median is kept")
    dc.add_argument("--codecs", type=comma_names, default=("bicodec", "s3gen", "snac"))
    dc.add_argument("--threads", type=int, default=1, help="torch threads")
    dc.add_argument("--seed", type=int, default=0, help="weights, tokens, voice and noise")
    dc.add_argument("--out", default=str(DEFAULT_OUT))
    dc.set_defaults(func=_run_from_args("bench.decoders"))

    dl = sub.add_parser(
        "lanes", help="CPU forwards one after another against the same at once on decode lanes"
    )
    decode_lanes_arguments(dl)
    dl.set_defaults(func=_run_from_args("bench.decode_lanes"))

    lt = sub.add_parser("long-text", help="a long text: pipelined segments vs sequential vs whole segments")
    lt.add_argument("--pack", type=Path, default=None, help="model pack; default: the embedded tiny pack")
    lt.add_argument("--chars", type=int, default=2000, help="length of the text")
    lt.add_argument("--max-tokens", type=int, default=0, help="cap per segment (0: the gateway's default)")
    lt.add_argument("--out", default=str(DEFAULT_OUT))
    lt.set_defaults(func=cmd_long_text)

    cb = sub.add_parser(
        "chatterbox",
        help="Chatterbox first audio: S3 tokens pipelined to the vocoder vs all tokens, then the flow",
    )
    cb.add_argument("--pack", type=Path, default=None, help="a chatterbox pack; default: a tiny random one")
    cb.add_argument("--pack-seed", type=int, default=0, help="seed of the default tiny pack")
    cb.add_argument("--runs", type=int, default=5, help="measured runs of each mode (after one warm-up each)")
    cb.add_argument("--tokens", type=int, default=100, help="speech tokens per request (100 = 4 s)")
    cb.add_argument("--seed", type=int, default=0, help="sampling and vocoder seed")
    cb.add_argument("--kind", default="medium", help="corpus group of the texts: short, medium")
    cb.add_argument("--out", default=str(DEFAULT_OUT))
    cb.set_defaults(func=cmd_chatterbox)

    en = sub.add_parser("enrolment", help="Spark voice enrolment: encode time for a 10 s reference")
    enrolment_arguments(en)
    en.set_defaults(func=_run_from_args("bench.enrolment"))
    ce = sub.add_parser(
        "chatterbox-enrolment", help="Chatterbox enrolment: each part's time for a 10 s reference"
    )
    chatterbox_enrolment_arguments(ce)
    ce.set_defaults(func=_run_from_args("bench.chatterbox_enrolment"))

    fl = sub.add_parser(
        "faults", help="leak: randomly cancelled streams; soak: steady load with cancellations"
    )
    fl.add_argument("what", choices=["leak", "overload", "soak"])
    fl.add_argument("--pack", type=Path, default=None, help="model pack; default: the embedded tiny pack")
    fl.add_argument("--streams", type=int, default=1000, help="leak: streams to cancel")
    concurrency_help = "leak: clients at once; overload: the gateway's stream limit; soak: 80%% of the "
    concurrency_help += "sustained capacity (4 streams on 2 CPU cores)"
    fl.add_argument("--concurrency", type=int, default=3, help=concurrency_help)
    fl.add_argument("--seconds", type=float, default=600.0, help="soak: how long; overload: per phase")
    fl.add_argument("--out", default=str(DEFAULT_OUT))
    fl.set_defaults(func=cmd_faults)

    rp = sub.add_parser("report", help="re-render a run's table and plot from its JSON")
    rp.add_argument("json")
    rp.set_defaults(func=cmd_report)
    return p


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP end the command as Ctrl-C does: by unwinding it (SystemExit), so each
    running system's `with` stops the processes it started. Further signals are ignored while
    that happens. The previous handlers are restored afterwards. Only the main thread can set
    handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGTERM, signal.SIGHUP)

    def unwind(signum: int, frame: object) -> None:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
        os.write(sys.stderr.fileno(), f"{signal.Signals(signum).name}: stopping\n".encode())
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, unwind) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with stopped_by_signals():
        return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
