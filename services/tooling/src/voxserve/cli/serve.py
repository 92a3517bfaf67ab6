"""`voxserve serve SERVICE`: run one service in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import importlib
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", choices=["generator", "vocoder", "gateway"])
    parser.add_argument("--pack", type=Path, default=None, help="model pack (generator, vocoder)")
    parser.add_argument("--port", type=int, default=None)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    app = importlib.import_module(f"voxserve.{args.service}.app")
    config = importlib.import_module(f"voxserve.{args.service}.config")
    overrides = {"port": args.port}
    if args.service != "gateway":
        overrides["pack"] = args.pack
    asyncio.run(app.run(config.load(**overrides)))
    return 0
