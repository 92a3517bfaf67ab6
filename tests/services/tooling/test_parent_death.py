"""A command started through voxserve.parent_death ends when the process that started it is
SIGKILLed, and never starts once that process is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux prctl")

WRAPPER = [sys.executable, "-m", "voxserve.parent_death"]


def process_gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody has reaped yet (a container's init may not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not process_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_the_command_runs_in_the_wrappers_place_with_sigterm_as_its_parent_death_signal() -> None:
    # PR_GET_PDEATHSIG (2) reads the setting back: it must have survived the exec.
    probe = textwrap.dedent(
        """
        import ctypes, os
        value = ctypes.c_int()
        ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0)
        print(os.getpid(), value.value)
        """
    )
    process = subprocess.Popen(
        [*WRAPPER, str(os.getpid()), sys.executable, "-c", probe], stdout=subprocess.PIPE
    )
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert out.split() == [str(process.pid).encode(), str(int(signal.SIGTERM)).encode()]


def test_the_command_is_not_started_for_a_parent_that_is_already_gone() -> None:
    done = subprocess.run(
        [*WRAPPER, str(os.getpid() + 1), sys.executable, "-c", "print('started')"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert "is gone; not starting" in done.stderr


def test_the_command_ends_when_its_starter_is_killed() -> None:
    launcher_code = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        child = subprocess.Popen({WRAPPER!r} + [str(os.getpid()), "sleep", "120"], start_new_session=True)
        print(child.pid, flush=True)
        time.sleep(120)
        """
    )
    with subprocess.Popen([sys.executable, "-c", launcher_code], stdout=subprocess.PIPE) as launcher:
        try:
            assert launcher.stdout is not None
            child = int(launcher.stdout.readline())
            time.sleep(0.5)  # the wrapper has exec'd `sleep` by now
            assert not process_gone(child)
            launcher.kill()
            launcher.wait(10)
            assert wait_gone(child, 5), "the command outlived the process that started it"
        finally:
            launcher.kill()
