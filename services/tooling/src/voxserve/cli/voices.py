"""`voxserve voices`: the voices of a registry file (default: the gateway's configured one) or of a
running gateway."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voxserve.v1 import speech_pb2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file", type=Path, default=None, help="registry file; default: the gateway's configured one"
    )
    parser.add_argument("--address", default=None, help="ask a running gateway instead (host:port)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from voxserve.v1 import speech_pb2

    if args.address:
        import grpc

        from voxserve.v1 import speech_pb2_grpc

        with grpc.insecure_channel(args.address) as channel:
            listed = speech_pb2_grpc.SpeechStub(channel).ListVoices(
                speech_pb2.ListVoicesRequest(), timeout=10
            )
        voices = list(listed.voices)
    else:
        from voxserve.gateway.config import load
        from voxserve.gateway.voices import VoiceRegistry

        path = args.file or load().voices_file
        try:
            registry = VoiceRegistry.from_file(path) if path else VoiceRegistry.builtin()
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        voices = [v.to_proto() for v in registry]
    if args.json:
        print(json.dumps([_voice_row(v) for v in voices], indent=2))
    else:
        _print_table(voices)
    return 0


def _voice_row(voice: speech_pb2.Voice) -> dict[str, object]:
    return {
        "id": voice.id,
        "family": voice.family,
        "sample_rate": voice.sample_rate,
        "pack": voice.pack,
        "controllable": voice.controllable,
        "speaker": voice.speaker,
        "description": voice.description,
    }


def _print_table(voices: list[speech_pb2.Voice]) -> None:
    header = ("ID", "FAMILY", "RATE", "PACK", "STYLE", "SPEAKER", "DESCRIPTION")
    rows = [
        (
            v.id,
            v.family,
            str(v.sample_rate),
            v.pack or "-",
            "yes" if v.controllable else "no",
            v.speaker or "-",
            v.description,
        )
        for v in voices
    ]
    # The description, last, is not padded.
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(6)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[6])
