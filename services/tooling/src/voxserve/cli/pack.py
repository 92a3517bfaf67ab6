"""`voxserve pack tiny|random DIR`: write a random model pack in a family's upstream layout."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from voxserve.random_packs.writer import PACK_WRITERS

    kinds = parser.add_subparsers(dest="kind", required=True)
    tiny = kinds.add_parser("tiny", help="a tiny random pack in its family's upstream layout")
    rnd = kinds.add_parser("random", help="a random pack in its family's upstream layout, tiny or full size")
    rnd.add_argument("--size", choices=["tiny", "full"], default="tiny")
    for sp in (tiny, rnd):
        sp.add_argument("dir")
        sp.add_argument("--seed", type=int, default=1234)
        sp.add_argument(
            "--family",
            choices=list(PACK_WRITERS),
            default="spark",
            help="spark: Spark-TTS (LLM/ + BiCodec/); s3: speech-token LM + S3Gen vocoder (24 kHz); "
            "orpheus: Llama LM writing SNAC codes + SNAC (24 kHz); "
            "chatterbox: Chatterbox's T3 + S3Gen (24 kHz)",
        )
        sp.add_argument(
            "--speakers",
            action="store_true",
            help="spark only: a speaker-name fine-tune (12 named speakers, inline emotion tags)",
        )
        sp.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from voxserve.random_packs.writer import write_random_pack

    size = getattr(args, "size", "tiny")
    pack = write_random_pack(Path(args.dir), size, seed=args.seed, family=args.family, speakers=args.speakers)
    kind = f"{pack.family.name} speaker-name" if args.speakers else pack.family.name
    print(f"wrote {size} random {kind} pack to {pack.root}")
    return 0
