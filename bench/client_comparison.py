"""HTTP against gRPC on the same running system: first audio and total time per level, their
ratio and the HTTP front's overhead (HTTP minus gRPC, per request)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.report import LevelSummary

CLIENTS = ("grpc", "http")
HTTP_SUFFIX = "/http"
"""A system measured through HTTP is recorded as `<system>/http` beside `<system>` (gRPC)."""


def http_system(name: str) -> str:
    return name + HTTP_SUFFIX


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _difference(minuend: float | None, subtrahend: float | None) -> float | None:
    return None if minuend is None or subtrahend is None else minuend - subtrahend


def _audio_per_request(level: LevelSummary) -> float | None:
    ok = level.streams - level.errors
    return level.audio_seconds / ok if ok else None


def compare_clients(systems: Mapping[str, Sequence[LevelSummary]]) -> list[dict[str, Any]]:
    """One row per level of every system measured both ways (seconds; ratios HTTP / gRPC, above 1
    means HTTP is slower; overheads HTTP - gRPC)."""
    rows = []
    for name, grpc_levels in systems.items():
        http_levels = {lv.concurrency: lv for lv in systems.get(http_system(name), [])}
        for grpc in grpc_levels:
            http = http_levels.get(grpc.concurrency)
            if http is None:
                continue
            rows.append(
                {
                    "system": name,
                    "concurrency": grpc.concurrency,
                    "grpc_requests": grpc.streams,
                    "http_requests": http.streams,
                    "grpc_errors": grpc.errors,
                    "http_errors": http.errors,
                    "grpc_ttfa_p50": grpc.ttfa_p50,
                    "http_ttfa_p50": http.ttfa_p50,
                    "ttfa_p50_ratio": _ratio(http.ttfa_p50, grpc.ttfa_p50),
                    "grpc_ttfa_p95": grpc.ttfa_p95,
                    "http_ttfa_p95": http.ttfa_p95,
                    "ttfa_p95_ratio": _ratio(http.ttfa_p95, grpc.ttfa_p95),
                    "ttfa_p50_overhead": _difference(http.ttfa_p50, grpc.ttfa_p50),
                    "grpc_total_p50": grpc.total_p50,
                    "http_total_p50": http.total_p50,
                    "total_p50_ratio": _ratio(http.total_p50, grpc.total_p50),
                    "total_p50_overhead": _difference(http.total_p50, grpc.total_p50),
                    "grpc_audio_per_request": _audio_per_request(grpc),
                    "http_audio_per_request": _audio_per_request(http),
                }
            )
    return sorted(rows, key=lambda row: (row["concurrency"], list(systems).index(row["system"])))


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f}"


def _signed_ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:+.0f}"


def _times(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2f}×"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def comparison_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The comparison as markdown lines; no lines without rows."""
    if not rows:
        return []
    header = [
        "concurrency",
        "system",
        "requests gRPC / HTTP",
        "errors gRPC / HTTP",
        "TTFA p50 gRPC (ms)",
        "TTFA p50 HTTP (ms)",
        "TTFA p50 HTTP/gRPC",
        "TTFA p95 gRPC (ms)",
        "TTFA p95 HTTP (ms)",
        "TTFA p95 HTTP/gRPC",
        "HTTP overhead, TTFA p50 (ms)",
        "total p50 gRPC (ms)",
        "total p50 HTTP (ms)",
        "HTTP overhead, total p50 (ms)",
        "audio s per request gRPC / HTTP",
    ]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    for r in rows:
        cells = [
            str(r["concurrency"]),
            str(r["system"]),
            f"{r['grpc_requests']} / {r['http_requests']}",
            f"{r['grpc_errors']} / {r['http_errors']}",
            _ms(r["grpc_ttfa_p50"]),
            _ms(r["http_ttfa_p50"]),
            _times(r["ttfa_p50_ratio"]),
            _ms(r["grpc_ttfa_p95"]),
            _ms(r["http_ttfa_p95"]),
            _times(r["ttfa_p95_ratio"]),
            _signed_ms(r["ttfa_p50_overhead"]),
            _ms(r["grpc_total_p50"]),
            _ms(r["http_total_p50"]),
            _signed_ms(r["total_p50_overhead"]),
            f"{_seconds(r['grpc_audio_per_request'])} / {_seconds(r['http_audio_per_request'])}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
