"""`voxserve voices`: the voices of a registry file (default: the gateway's configured one) or of a
running gateway, built-in and stored; `voices add`, `show` and `rm` enrol, describe and delete
a stored voice on a running gateway."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voxserve.client import ClientSecurity
    from voxserve.v1 import speech_pb2

DEFAULT_ADDRESS = "127.0.0.1:50051"
RAW_SUFFIXES = (".pcm", ".raw")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file", type=Path, default=None, help="registry file; default: the gateway's configured one"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    _connection_arguments(parser, listing=True)
    parser.set_defaults(func=run)
    actions = parser.add_subparsers(dest="action", metavar="{add,show,rm,export}")

    add = actions.add_parser("add", help="enrol a voice from reference audio on a running gateway")
    add.add_argument("voice_id", metavar="ID", help="the new voice's id (a-z, 0-9, '.', '_', '-')")
    add.add_argument(
        "audio",
        metavar="FILE",
        help="WAV, FLAC, Ogg (Opus or Vorbis) or MP3; .pcm/.raw: PCM16 mono (needs --sample-rate); "
        "'-': read standard input",
    )
    add.add_argument("--transcript", default=None, help="what the reference audio says")
    add.add_argument("--name", default="", help="a name to show")
    add.add_argument("--description", default="")
    add.add_argument("--consent", default="", help="who agreed to this voice being enrolled, and how")
    add.add_argument("--family", default="", help="model family; default: the default voice's")
    add.add_argument(
        "--exaggeration", type=float, default=None, help="chatterbox: the voice's default exaggeration, 0..2"
    )
    add.add_argument(
        "--sample-rate",
        type=int,
        default=0,
        help="rate of raw PCM16 audio (.pcm/.raw or standard input), 8000..48000",
    )
    _connection_arguments(add)
    add.set_defaults(func=run_add)

    show = actions.add_parser("show", help="one voice of a running gateway")
    show.add_argument("voice_id", metavar="ID")
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    _connection_arguments(show)
    show.set_defaults(func=run_show)

    remove = actions.add_parser("rm", help="delete a stored voice from a running gateway")
    remove.add_argument("voice_id", metavar="ID")
    _connection_arguments(remove)
    remove.set_defaults(func=run_remove)

    export = actions.add_parser(
        "export", help="write a stored voice in its upstream file format (chatterbox: conds.pt)"
    )
    export.add_argument("voice_id", metavar="ID")
    export.add_argument("output", metavar="OUT", type=Path, help="the file to write, e.g. conds.pt")
    _connection_arguments(export)
    export.set_defaults(func=run_export)


def _connection_arguments(parser: argparse.ArgumentParser, *, listing: bool = False) -> None:
    """How to reach the gateway. On the actions, an option left out keeps what was given before
    the action's name (`voxserve voices --address A rm ID`)."""
    unset = None if listing else argparse.SUPPRESS
    parser.add_argument(
        "--address",
        default=unset,
        help="ask a running gateway instead (host:port)"
        if listing
        else f"gateway (default {DEFAULT_ADDRESS})",
    )
    parser.add_argument("--api-key", default=unset, help="the gateway's API key (sent as a bearer token)")
    parser.add_argument("--ca", type=Path, default=unset, help="CA certificate (PEM) of a TLS gateway")


def _security(args: argparse.Namespace) -> ClientSecurity:
    from voxserve.client import ClientSecurity

    return ClientSecurity(api_key=args.api_key, ca_file=args.ca)


def _rpc_failed(error: Exception) -> int:
    print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)  # type: ignore[attr-defined]
    return 1


def run(args: argparse.Namespace) -> int:
    if args.address:
        import grpc

        from voxserve.client import list_voices

        try:
            voices = list_voices(args.address, security=_security(args))
        except grpc.RpcError as error:
            return _rpc_failed(error)
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


def read_audio(path: str, sample_rate: int) -> tuple[bytes, int]:
    """The upload's bytes and its PCM16 rate (0: a file that carries its own). Raises ValueError
    for a raw file without a rate, or a rate for a file that has one."""
    raw_file = path != "-" and Path(path).suffix.lower() in RAW_SUFFIXES
    if raw_file and not sample_rate:
        raise ValueError(f"{path} is raw PCM16: give its rate with --sample-rate")
    if sample_rate and not (raw_file or path == "-"):
        raise ValueError(
            f"--sample-rate is for raw PCM16 ({', '.join(RAW_SUFFIXES)} or '-'); {path} carries its own"
        )
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    return data, sample_rate


def run_add(args: argparse.Namespace) -> int:
    import grpc

    from voxserve.client import create_voice

    try:
        data, rate = read_audio(args.audio, args.sample_rate)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        voice = create_voice(
            args.address or DEFAULT_ADDRESS,
            args.voice_id,
            data,
            transcript=args.transcript,
            exaggeration=args.exaggeration,
            display_name=args.name,
            description=args.description,
            family=args.family,
            consent=args.consent,
            pcm16_sample_rate=rate,
            security=_security(args),
        )
    except grpc.RpcError as error:
        return _rpc_failed(error)
    print(
        f"created voice {voice.id} ({voice.family}, {voice.sample_rate} Hz, "
        f"from {voice.reference_seconds:.2f} s of reference audio)"
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    import grpc

    from voxserve.client import get_voice

    try:
        voice = get_voice(args.address or DEFAULT_ADDRESS, args.voice_id, security=_security(args))
    except grpc.RpcError as error:
        return _rpc_failed(error)
    row = _voice_row(voice)
    if args.json:
        print(json.dumps(row, indent=2))
    else:
        width = max(map(len, row))
        for key, value in row.items():
            print(f"{key.ljust(width)}  {_shown(key, value)}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    import grpc

    from voxserve.client import get_voice
    from voxserve.voice_files import write_voice_file

    try:
        voice = get_voice(
            args.address or DEFAULT_ADDRESS, args.voice_id, security=_security(args), conditioning=True
        )
    except grpc.RpcError as error:
        return _rpc_failed(error)
    if not voice.stored:
        print(f"error: {args.voice_id} is a built-in voice; only stored voices export", file=sys.stderr)
        return 1
    try:
        kind = write_voice_file(voice.conditioning, args.output)
    except ValueError as exc:
        print(f"error: {args.voice_id}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({kind} of voice {args.voice_id})")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    import grpc

    from voxserve.client import delete_voice

    try:
        delete_voice(args.address or DEFAULT_ADDRESS, args.voice_id, security=_security(args))
    except grpc.RpcError as error:
        return _rpc_failed(error)
    print(f"deleted voice {args.voice_id}")
    return 0


def _shown(key: str, value: object) -> str:
    if key == "created_unix_seconds" and isinstance(value, float):
        return datetime.datetime.fromtimestamp(value, datetime.UTC).isoformat(timespec="seconds")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value) if value not in ("", None) else "-"


def _voice_row(voice: speech_pb2.Voice) -> dict[str, object]:
    row: dict[str, object] = {
        "id": voice.id,
        "family": voice.family,
        "sample_rate": voice.sample_rate,
        "pack": voice.pack,
        "controllable": voice.controllable,
        "speaker": voice.speaker,
        "description": voice.description,
        "stored": voice.stored,
    }
    if voice.stored:
        row |= {
            "display_name": voice.display_name,
            "transcript": voice.transcript,
            "consent": voice.consent,
            "created_unix_seconds": voice.created_unix_seconds,
            "reference_seconds": voice.reference_seconds,
        }
    return row


def _print_table(voices: list[speech_pb2.Voice]) -> None:
    header = ("ID", "KIND", "FAMILY", "RATE", "PACK", "STYLE", "SPEAKER", "DESCRIPTION")
    rows = [
        (
            v.id,
            "stored" if v.stored else "built-in",
            v.family,
            str(v.sample_rate),
            v.pack or "-",
            "yes" if v.controllable else "no",
            v.speaker or "-",
            v.description or v.display_name,
        )
        for v in voices
    ]
    # The description, last, is not padded.
    last = len(header) - 1
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(last)]
    for row in [header, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[last]
        )
