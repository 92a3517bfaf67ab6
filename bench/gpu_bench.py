"""The device benchmark of the vocoder tier: every codec, every system, one command.

`python -m bench.gpu_bench --device cuda:0 --out DIR` (what `scripts/gpu-bench.sh` runs once the
distributions are installed) writes a full-size random pack of each codec (`bench.vocoder_packs`:
BiCodec, S3Gen, S3Gen Turbo, SNAC 24 kHz), runs `bench vocoder` on each with voxserve, batch
size 1 and the baseline loop at 1, 16, 64, 128 and 256 streams (a system stops at its first level
with an underrun or an error), and writes to DIR:

- `gpu-bench.json`: per codec and system, the streams sustained without an underrun (tokens fed
  at 2x real time) and TTFA p50/p95, underrun rate and throughput at each level; the device; the
  full records of every run;
- `gpu-bench.md`: the same as tables; `gpu-bench.png`: TTFA p95 and underrun rate per codec;
- `gpu-bench-logs.tar.gz`: every service's log, for a run that went wrong.

Packs and the per-run records go to a scratch directory (`--work`), so DIR holds four files. A
time budget (`--budget-seconds`) skips the codecs not yet started once it is spent, so that the
whole run ends in time on a slow machine; skipped codecs are listed as such.

`--quick` is the rehearsal: tiny packs, levels 1 and 2, streams of one second fed at 4x, so the
same path runs on a CPU in about a minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.arguments import comma_ints, comma_names
from bench.report import BenchRun, read_json, sustained_streams
from bench.tier_codec import tier_codec
from bench.vocoder_packs import VOCODER_PACKS, write_vocoder_pack
from bench.vocoder_tier import SYSTEMS
from voxserve.families.pack import Pack

FULL_LEVELS = (1, 16, 64, 128, 256)
QUICK_LEVELS = (1, 2)
# Seconds a level's streams may take: a 5 s stream fed at 2x that is not done in 30 s is on a
# device far past saturation, and the stop rule ends the system's levels there.
FULL_REQUEST_TIMEOUT = 30.0
QUICK_REQUEST_TIMEOUT = 60.0
QUICK_STREAM_SECONDS = 1.0
# Past this, codecs not yet started are skipped: at most one codec's runs (about 1.5 minutes on
# an H100) follow, inside the 8 minutes the whole command has.
DEFAULT_BUDGET_SECONDS = 330.0


def device_facts(device: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda}
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        facts["name"] = torch.cuda.get_device_name(torch.device(device))
        facts["memory_bytes"] = torch.cuda.get_device_properties(torch.device(device)).total_memory
    return facts


def tier_args(pack: Pack, codec: str, args: argparse.Namespace, runs: Path) -> list[str]:
    """The `bench vocoder` command line for one codec."""
    levels = args.levels or (QUICK_LEVELS if args.quick else FULL_LEVELS)
    argv = [
        "vocoder",
        "--pack",
        str(pack.root),
        "--device",
        args.device,
        "--label",
        codec,
        "--out",
        str(runs),
    ]
    argv += ["--concurrency", ",".join(str(level) for level in levels), "--streams-per-client", "1"]
    argv += ["--systems", ",".join(args.systems), "--stop-when-saturated"]
    if args.quick:
        tokens = tier_codec(pack.family.codec).tokens_for(QUICK_STREAM_SECONDS)
        argv += ["--rate", "4", "--request-timeout", str(QUICK_REQUEST_TIMEOUT), "--tokens", str(tokens)]
    else:
        argv += ["--rate", "2", "--request-timeout", str(FULL_REQUEST_TIMEOUT)]
    return argv


def codec_summary(run: BenchRun) -> dict[str, Any]:
    systems = {}
    for name, levels in run.systems.items():
        systems[name] = {
            "sustained_streams": sustained_streams(levels),
            "levels": [
                {
                    "concurrency": lv.concurrency,
                    "ttfa_p50_ms": None if lv.ttfa_p50 is None else round(lv.ttfa_p50 * 1000, 1),
                    "ttfa_p95_ms": None if lv.ttfa_p95 is None else round(lv.ttfa_p95 * 1000, 1),
                    "underrun_rate": lv.underrun_rate,
                    "errors": lv.errors,
                    "audio_seconds_per_wall_second": round(lv.audio_seconds_per_wall_second, 2),
                }
                for lv in levels
            ],
        }
    return {"stream_tokens": run.settings.get("stream_tokens"), "systems": systems}


def markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Vocoder tier on {summary['device'].get('name', summary['device']['device'])}", ""]
    for codec, entry in summary["codecs"].items():
        lines.append(f"## {codec}")
        if "skipped" in entry:
            lines += ["", f"skipped: {entry['skipped']}", ""]
            continue
        sustained = ", ".join(f"{n} {s['sustained_streams']}" for n, s in entry["systems"].items())
        lines += ["", f"Streams sustained without an underrun: {sustained}", ""]
        lines += ["| system | streams | TTFA p50 ms | TTFA p95 ms | underrun rate | audio-s/s |"]
        lines += ["|---|---:|---:|---:|---:|---:|"]
        for name, system in entry["systems"].items():
            for lv in system["levels"]:
                lines.append(
                    f"| {name} | {lv['concurrency']} | {lv['ttfa_p50_ms']} | {lv['ttfa_p95_ms']} "
                    f"| {lv['underrun_rate']:.2f} | {lv['audio_seconds_per_wall_second']} |"
                )
        lines.append("")
    return "\n".join(lines)


def plot_summary(summary: dict[str, Any], path: Path) -> None:
    """Per codec, TTFA p95 and underrun rate against streams, one line per system."""
    codecs = [c for c, entry in summary["codecs"].items() if "systems" in entry]
    fig = Figure(figsize=(12, 3.2 * max(1, len(codecs))), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(1, len(codecs)), 2, squeeze=False)
    for row, codec in zip(axes, codecs, strict=False):
        for i, (name, system) in enumerate(summary["codecs"][codec]["systems"].items()):
            levels = system["levels"]
            xs = [lv["concurrency"] for lv in levels]
            ttfa = [lv["ttfa_p95_ms"] if lv["ttfa_p95_ms"] is not None else float("nan") for lv in levels]
            row[0].plot(xs, ttfa, "-o", color=f"C{i}", label=name)
            row[1].plot(xs, [lv["underrun_rate"] for lv in levels], "-o", color=f"C{i}", label=name)
        row[0].set_title(f"{codec}: TTFA p95 (ms)")
        row[1].set_title(f"{codec}: streams with an underrun")
        row[1].set_ylim(-0.05, 1.05)
        for ax in row:
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent streams")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="small")
    fig.savefig(path, format="png")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.__main__ import main as bench_main

    started = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu-bench-"))
    runs = work / "runs"
    size = "tiny" if args.quick else "full"
    summary: dict[str, Any] = {"device": device_facts(args.device), "size": size, "codecs": {}}
    records: dict[str, Any] = {}
    try:
        for codec in args.codecs:
            elapsed = time.monotonic() - started
            if elapsed > args.budget_seconds:
                summary["codecs"][codec] = {"skipped": f"time budget spent ({elapsed:.0f} s)"}
                continue
            print(f"== {codec}: writing a {size} pack", flush=True)
            pack = write_vocoder_pack(work / "packs" / codec, codec, size)
            if bench_main(tier_args(pack, codec, args, runs)) != 0:
                raise RuntimeError(f"bench vocoder failed on {codec}")
            record = max(runs.glob(f"vocoder-tier-{codec}-*.json"))
            tier = read_json(record)
            summary["codecs"][codec] = codec_summary(tier)
            records[codec] = dataclasses.asdict(tier)
            shutil.rmtree(work / "packs" / codec, ignore_errors=True)  # full packs are 0.1-0.5 GB
        summary["seconds"] = round(time.monotonic() - started, 1)
        (out / "gpu-bench.json").write_text(json.dumps(summary | {"runs": records}, indent=2) + "\n")
        (out / "gpu-bench.md").write_text(markdown(summary) + "\n")
        plot_summary(summary, out / "gpu-bench.png")
    finally:
        with tarfile.open(out / "gpu-bench-logs.tar.gz", "w:gz") as logs:
            if (runs / "logs").is_dir():
                logs.add(runs / "logs", arcname="logs")
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown(summary), flush=True)
    return summary


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda:0", help="where every system decodes")
    p.add_argument("--out", required=True, help="directory for gpu-bench.json, .md, .png and the logs")
    p.add_argument("--quick", action="store_true", help="the rehearsal: tiny packs, levels 1 and 2")
    p.add_argument("--codecs", type=comma_names, default=VOCODER_PACKS, help="default: all four")
    p.add_argument("--systems", type=comma_names, default=SYSTEMS, help="default: all three")
    p.add_argument("--levels", type=comma_ints, default=None, help="streams per level")
    p.add_argument("--budget-seconds", type=float, default=DEFAULT_BUDGET_SECONDS)
    p.add_argument(
        "--work", default=None, help="scratch directory for packs and runs (default: a temporary one)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    unknown = sorted(set(args.codecs) - set(VOCODER_PACKS))
    if unknown:
        parser().error(f"unknown codecs {', '.join(unknown)}; codecs: {', '.join(VOCODER_PACKS)}")
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
