"""One benchmark invocation: every system, every concurrency level, one report.

Systems run one after another on the same pack, texts, sampling and levels, so their figures
are comparable: `voxserve` (the three services), `voxserve-bs1` (the same services with the
vocoder's cross-request batching disabled) and `baseline` (the monolithic pipeline voxserve
replaces, serving the same Speech API). Each is measured through gRPC `Synthesize`, and with
`clients` holding "http" the gateway-fronted systems also through HTTP `POST /v1/audio/speech`,
both clients back to back at every level on the same running system.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bench.client_comparison import CLIENTS, compare_clients, http_system
from bench.corpus import Text, load_corpus
from bench.http_load import HTTP_SAMPLE_RATE, run_http_load, wait_http_ready
from bench.load import LoadResult, run_load
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
from voxserve.families.pack import Pack
from voxserve.stack import LocalStack, Ports, free_port, wait_serving
from voxserve.vocoder.config import VocoderConfig

SYSTEMS = ("voxserve", "voxserve-bs1", "baseline")
SERVICE_START_TIMEOUT = 600.0
STOP_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class BenchSettings:
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16)
    systems: tuple[str, ...] = SYSTEMS
    requests_per_client: int = 2
    """Count mode: each level runs concurrency x this many requests."""
    duration: float | None = None
    """Duration mode instead: seconds per level (no request starts after it)."""
    max_tokens: int | None = 250
    """Semantic tokens per request (250 = 5 s of audio); None lets the gateway's default cap apply."""
    voice: str = "default"
    baseline_window_tokens: int | None = None
    device: str = "cpu"
    """Where both voxserve's vocoder and the baseline decode (e.g. cuda:0)."""
    scaling: bool = True
    warmup_requests: int = 2
    request_timeout: float = 300.0
    """Each request's gRPC deadline, in seconds."""
    kinds: tuple[str, ...] = ()
    """Corpus groups to use (short, medium, long, hindi); empty means all."""
    clients: tuple[str, ...] = ("grpc",)
    """How requests reach a system: "grpc" (Synthesize), "http" (POST /v1/audio/speech, pcm;
    only systems with the gateway's HTTP front). With "http", gRPC requests ask for 24 kHz as
    the HTTP front sends, so both do the same work, and no request may set max_tokens (the HTTP
    API has none): every request is capped by the gateway's default."""
    extra_env: dict[str, str] = field(default_factory=dict)


def stop_process_group(process: subprocess.Popen[bytes], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM a process started in its own session (its graceful stop), SIGKILL it if it has not
    exited within `grace` seconds, then SIGKILL whatever is left of its process group: the
    processes it started (the baseline's vLLM engine core) outlive it when it dies before its own
    stop runs, e.g. when it is terminated while still loading. The group is killed even if the
    wait is interrupted."""
    try:
        if process.poll() is None:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(grace)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def serving_process(
    command: list[str], port: int, log_path: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Run `command` (a gRPC server on 127.0.0.1:`port`) until it reports SERVING; yield its
    address; afterwards stop it and every process it started (`stop_process_group`)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        # Its own process group, so that stopping it reaches the processes it starts.
        process = subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)
        try:
            wait_serving(f"127.0.0.1:{port}", SERVICE_START_TIMEOUT, process)
            yield f"127.0.0.1:{port}"
        finally:
            stop_process_group(process)


@dataclass(frozen=True)
class Endpoints:
    grpc: str
    """host:port of the Speech API."""
    http: str | None = None
    """Base URL of the gateway's HTTP front; None for a system without one."""


@contextlib.contextmanager
def running_system(name: str, pack: Pack, settings: BenchSettings, log_dir: Path) -> Iterator[Endpoints]:
    """Start a system on free local ports; yield where it serves; stop it afterwards."""
    if name in ("voxserve", "voxserve-bs1"):
        env = {"VOXSERVE_VOCODER_DEVICE": settings.device, **settings.extra_env}
        if name == "voxserve-bs1":
            env["VOXSERVE_VOCODER_BATCHING"] = "false"
        # Free ports, the HTTP front's included (the stack hands it to the gateway).
        stack = LocalStack(pack.root, Ports.free(), env=env, log_dir=log_dir / name)
        try:
            stack.start(timeout=SERVICE_START_TIMEOUT)
            yield Endpoints(stack.ports.address("gateway"), stack.ports.http_url())
        finally:
            stack.stop()
        return
    if name != "baseline":
        raise ValueError(f"system {name!r} is unknown; systems: {', '.join(SYSTEMS)}")
    port = free_port()
    command = [sys.executable, "-m", "bench.baseline", "--pack", str(pack.root), "--port", str(port)]
    # Decode with the vocoder service's thread count, so the two differ only in their schedule.
    command += ["--device", settings.device, "--torch-threads", str(VocoderConfig().torch_threads)]
    if settings.baseline_window_tokens:
        command += ["--window-tokens", str(settings.baseline_window_tokens)]
    with serving_process(command, port, log_dir / "baseline.log") as address:
        yield Endpoints(address)


def measure_system(address: str, texts: Sequence[Text], settings: BenchSettings) -> list[LevelSummary]:
    """The levels of a system through gRPC alone."""
    return measure_clients(Endpoints(address), texts, replace(settings, clients=("grpc",)))["grpc"]


def measure_clients(
    endpoints: Endpoints, texts: Sequence[Text], settings: BenchSettings
) -> dict[str, list[LevelSummary]]:
    """Each of `settings.clients` that the system serves -> its levels. Every client is warmed up
    first; at each level the clients run one after the other (the first one alternating), so a
    drift of the machine over the run touches both alike."""
    clients = [c for c in settings.clients if c == "grpc" or endpoints.http is not None]
    if skipped := [c for c in settings.clients if c not in clients]:
        print(f"  no HTTP front: measured through {', '.join(clients) or 'nothing'}, not {skipped}")
    model = asyncio.run(wait_http_ready(endpoints.http)) if "http" in clients and endpoints.http else ""
    sample_rate = HTTP_SAMPLE_RATE if "http" in settings.clients else 0

    def load(client: str, concurrency: int, requests: int | None, max_tokens: int | None) -> LoadResult:
        if client == "http" and endpoints.http is not None:
            return asyncio.run(
                run_http_load(
                    endpoints.http,
                    concurrency,
                    texts=texts,
                    requests=requests,
                    duration=settings.duration if requests is None else None,
                    voice=settings.voice,
                    model=model,
                    timeout=settings.request_timeout,
                )
            )
        return asyncio.run(
            run_load(
                endpoints.grpc,
                concurrency,
                texts=texts,
                requests=requests,
                duration=settings.duration if requests is None else None,
                voice=settings.voice,
                max_tokens=max_tokens,
                sample_rate=sample_rate,
                timeout=settings.request_timeout,
            )
        )

    for client in clients:
        warmup = load(client, 1, settings.warmup_requests, 20)
        if errors := [r.error for r in warmup.records if r.error]:
            print(f"  warm-up {client}: {len(errors)} errors, the first: {errors[0]}", flush=True)
    levels: dict[str, list[LevelSummary]] = {client: [] for client in clients}
    for i, concurrency in enumerate(settings.concurrency):
        requests = None if settings.duration else concurrency * settings.requests_per_client
        # Alternating which client goes first keeps a warm-up or drift from favouring one.
        for client in clients if i % 2 == 0 else clients[::-1]:
            level = summarize(load(client, concurrency, requests, settings.max_tokens), concurrency)
            levels[client].append(level)
            via = "" if clients == ["grpc"] else f" {client}"
            print(f"  c={concurrency}{via}: {format_level(level)}", flush=True)
    return levels


def format_level(level: LevelSummary) -> str:
    p50 = f"{level.ttfa_p50 * 1000:.0f}" if level.ttfa_p50 is not None else "-"
    p95 = f"{level.ttfa_p95 * 1000:.0f}" if level.ttfa_p95 is not None else "-"
    return (
        f"TTFA p50 {p50} ms, p95 {p95} ms, underrun rate {level.underrun_rate:.2f}, "
        f"{level.audio_seconds_per_wall_second:.2f} audio-s/s, {level.errors} errors"
    )


def run_bench(pack: Pack, settings: BenchSettings, out_dir: Path) -> BenchRun:
    texts = [t for t in load_corpus() if not settings.kinds or t.kind in settings.kinds]
    if not texts:
        raise ValueError(f"no corpus texts of kinds {settings.kinds}")
    if unknown := set(settings.clients) - set(CLIENTS):
        raise ValueError(f"clients {sorted(unknown)} are unknown; clients: {', '.join(CLIENTS)}")
    if "http" in settings.clients and settings.max_tokens is not None:
        raise ValueError("the HTTP API takes no max_tokens: with the http client, leave max_tokens unset")
    out_dir.mkdir(parents=True, exist_ok=True)
    systems: dict[str, list[LevelSummary]] = {}
    for name in settings.systems:
        print(f"{name}: starting", flush=True)
        started = time.monotonic()
        with running_system(name, pack, settings, out_dir / "logs") as endpoints:
            print(f"{name}: serving after {time.monotonic() - started:.0f} s", flush=True)
            for client, levels in measure_clients(endpoints, texts, settings).items():
                systems[name if client == "grpc" else http_system(name)] = levels
    scaling = None
    if settings.scaling:
        from bench.scaling import run_scaling

        scaling = run_scaling(pack.root)
    run = BenchRun(
        machine=machine_facts(),
        git_commit=git_commit(),
        pack={"path": str(pack.root), "family": pack.family.name},
        settings={k: v for k, v in asdict(settings).items() if k != "extra_env"}
        | {"env": settings.extra_env},
        systems=systems,
        scaling=scaling,
        http_vs_grpc=compare_clients(systems),
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    write_json(run, out_dir / f"run-{stamp}.json")
    plot(run, out_dir / f"run-{stamp}.png")
    (out_dir / f"run-{stamp}.md").write_text(markdown_table(run) + "\n", encoding="utf-8")
    print(markdown_table(run))
    print(f"\nwrote {out_dir}/run-{stamp}.json, .png and .md")
    return run
