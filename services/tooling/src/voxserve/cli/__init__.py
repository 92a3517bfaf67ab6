"""`voxserve`: run the services, write packs, and speak through a running gateway."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib.metadata import entry_points

from voxserve.cli import config, demo, health, pack, say, serve, up, voices
from voxserve.cli.config import setting_groups
from voxserve.common.config import ConfigError

__all__ = ["main", "parser", "setting_groups"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voxserve", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    pack.add_arguments(sub.add_parser("pack", help="write a model pack"))
    serve.add_arguments(
        sub.add_parser("serve", help="run one service in the foreground (config from VOXSERVE_* variables)")
    )
    up.add_arguments(sub.add_parser("up", help="run all three services locally until Ctrl-C"))
    say.add_arguments(sub.add_parser("say", help="synthesize TEXT through a running gateway"))
    demo.add_arguments(sub.add_parser("demo", help="start the services, synthesize a sentence, stop"))
    # Listed for --help only: main() hands `voxserve bench ...` to the bench package whole.
    sub.add_parser("bench", help="load and scaling benchmarks against the baseline (voxserve bench --help)")
    voices.add_arguments(
        sub.add_parser(
            "voices",
            help="list the voices of a registry file or of a running gateway; add, show, rm stored voices",
        )
    )
    health.add_arguments(
        sub.add_parser("health", help="check a service's gRPC health once; exit 0 only when SERVING")
    )
    config.add_arguments(sub.add_parser("config", help="list every setting with its default"))
    return p


def _plugin_command(name: str, argv: list[str]) -> int:
    """A command another distribution provides (`voxserve.commands` entry points): the bench
    harness lives in the development workspace, not beside the services."""
    found = [e for e in entry_points(group="voxserve.commands") if e.name == name]
    if not found:
        print(f"voxserve {name}: not installed here; it comes with the development workspace (make setup)")
        return 2
    command: Callable[[list[str]], int] = found[0].load()
    return command(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        return _plugin_command("bench", argv[1:])
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"voxserve: {exc}", file=sys.stderr)
        return 2
