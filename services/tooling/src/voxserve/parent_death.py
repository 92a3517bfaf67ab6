"""`python -m voxserve.parent_death PARENT_PID COMMAND [ARG...]`: become COMMAND, bound to end
with PARENT_PID.

Linux's parent-death signal (prctl PR_SET_PDEATHSIG) has the kernel send SIGTERM to this process
when the thread that started it ends, however it ends: SIGKILL and crashes included, which no
cleanup code in the parent survives. A process can set it only on itself, and it survives exec,
so this process sets it and then execs COMMAND in its place (same pid).

Why a separate start rather than Popen's preexec_fn: preexec_fn runs Python in the forked child
before exec, which can deadlock when the parent has other threads (gRPC channels and thread pools
start them), and Python documents it as unsafe there. The cost is one short interpreter start.

Elsewhere than Linux there is no such signal: COMMAND runs unbound (see `bind_to_parent`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def bind_to_parent(sig: int = signal.SIGTERM) -> bool:
    """Have the kernel send `sig` to this process when its parent thread ends; False where the
    system cannot (not Linux, or prctl refused)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: python -m voxserve.parent_death PARENT_PID COMMAND [ARG...]", file=sys.stderr)
        return 2
    parent, command = int(argv[0]), argv[1:]
    bind_to_parent()
    # The parent may have died before the signal was asked for, and then it never comes: this
    # process already belongs to another parent, and COMMAND must not start unwatched.
    if os.getppid() != parent:
        print(f"parent_death: parent {parent} is gone; not starting {command[0]}", file=sys.stderr)
        return 1
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
