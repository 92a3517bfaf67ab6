"""A benchmark stopped by SIGTERM stops every process it started, its systems' children included."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from voxserve.families.pack import Pack
from voxserve.stack import wait_serving

REPO = Path(__file__).resolve().parents[2]


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.NoSuchProcess:
        return ""


def sigterm_when(
    args: list[str], ready: Callable[[list[psutil.Process]], bool], log: Path, timeout: float = 200
) -> list[psutil.Process]:
    """Run `python -m bench ARGS` until `ready(its descendants)`, SIGTERM it and check that it exits
    with 128 + SIGTERM; return the processes that lived under it then, still running or not."""
    with open(log, "wb") as out:
        bench = subprocess.Popen([sys.executable, "-m", "bench", *args], stdout=out, stderr=out, cwd=REPO)
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + timeout
        while not ready(started := descendants(bench.pid)):
            assert bench.poll() is None, f"bench exited with {bench.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"not ready after {timeout:.0f} s:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        started = descendants(bench.pid)
        bench.send_signal(signal.SIGTERM)
        assert bench.wait(60) == 128 + signal.SIGTERM, log.read_text()[-3000:]
        assert "SIGTERM: stopping" in log.read_text()
        psutil.wait_procs([p for p in started if running(p)], timeout=10)
        return started
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        leftover = [p for p in started if running(p)]
        for process in leftover:  # so that a failure leaves nothing behind either
            process.kill()


def test_sigterm_while_the_baseline_loads_stops_server_and_engine(tiny_pack: Pack, tmp_path: Path) -> None:
    # SIGTERM once the baseline server has started vLLM's engine core process: the server dies
    # before its own graceful stop can stop the engine, so the harness must stop both.
    args = ["run", "--pack", str(tiny_pack.root), "--systems", "baseline", "--concurrency", "1"]
    args += ["--no-scaling", "--out", str(tmp_path)]

    def engine_started(processes: list[psutil.Process]) -> bool:
        return any("EngineCor" in name(p) for p in processes)

    started = sigterm_when(args, engine_started, tmp_path / "bench.log")
    assert any("EngineCor" in name(p) for p in started)
    assert [p for p in started if running(p)] == []


def test_sigterm_while_measuring_stops_the_system_under_load(tiny_pack: Pack, tmp_path: Path) -> None:
    # The vocoder tier's baseline starts in seconds; 5 s streams keep the load running when the
    # signal arrives.
    args = ["vocoder", "--pack", str(tiny_pack.root), "--systems", "baseline", "--concurrency", "1"]
    args += ["--streams-per-client", "1000", "--tokens", "250", "--rate", "1", "--out", str(tmp_path)]

    def measuring(processes: list[psutil.Process]) -> bool:
        for process in processes:
            try:
                ports = [c.laddr.port for c in process.net_connections("tcp") if c.status == "LISTEN"]
            except psutil.NoSuchProcess:
                continue
            if ports:
                wait_serving(f"127.0.0.1:{ports[0]}", 60)
                time.sleep(1.5)  # the harness's warm-up streams are under way
                return True
        return False

    started = sigterm_when(args, measuring, tmp_path / "bench.log")
    assert started
    assert [p for p in started if running(p)] == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_the_signal_handlers_are_restored_after_a_command(signum: signal.Signals) -> None:
    from bench.__main__ import stopped_by_signals

    before = signal.getsignal(signum)
    with stopped_by_signals():
        assert signal.getsignal(signum) is not before
    assert signal.getsignal(signum) is before
