"""`voxserve demo`: start the services, speak one sentence into a file, stop them."""

from __future__ import annotations

import argparse
from pathlib import Path

from voxserve.cli.say import add_synthesis_arguments, say_on_local_stack

DEMO_TEXT = "Hello from voxserve: this sentence was generated, decoded and streamed as it was spoken."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", default=DEMO_TEXT)
    parser.add_argument("--pack", type=Path, default=None)
    # What `say` reads and `demo` does not offer: the services are local, plaintext and keyless.
    parser.set_defaults(stream=False, api_key=None, ca=None)
    add_synthesis_arguments(parser, default_output="demo.wav")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from voxserve.random_packs.writer import resolve_pack

    say_on_local_stack(resolve_pack(args.pack).root, args)
    return 0
