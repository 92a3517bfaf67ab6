"""`voxserve up`: the three services as local processes until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pack", type=Path, default=None, help="model pack; default: the embedded tiny pack")
    parser.add_argument("--port", type=int, default=50051, help="gateway port (gRPC)")
    parser.add_argument(
        "--http-port", type=int, default=8080, help="gateway HTTP port (OpenAI-style API, playground); 0: off"
    )
    parser.add_argument("--log-dir", default=".voxserve/logs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from voxserve.random_packs.writer import resolve_pack
    from voxserve.stack import LocalStack, Ports

    stack = LocalStack(
        resolve_pack(args.pack).root,
        Ports(gateway=args.port, gateway_http=args.http_port),
        log_dir=Path(args.log_dir) if args.log_dir else None,
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    started = time.monotonic()
    try:  # a start that fails half way stops what it started
        stack.start()
        print(
            f"voxserve up in {time.monotonic() - started:.1f} s: gateway {stack.ports.address('gateway')} "
            + (f"(HTTP and playground {stack.ports.http_url('/')}) " if args.http_port else "")
            + f"(generator {stack.ports.address('generator')}, vocoder {stack.ports.address('vocoder')}); "
            "Ctrl-C stops",
            flush=True,
        )
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while not stopping:
            for name, process in stack.processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with code {process.returncode}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    finally:
        stack.stop()
    return 0
