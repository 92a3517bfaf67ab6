"""`voxserve health`: the services' own health probe (voxserve-health) on the command line."""

from __future__ import annotations

import argparse

from voxserve.common import health_probe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    health_probe.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return health_probe.probe(args, "voxserve health")
