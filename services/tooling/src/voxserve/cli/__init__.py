"""`voxserve`: run the services, write packs, and speak through a running gateway."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

from voxserve.common import health_probe
from voxserve.common.config import ConfigError

DEMO_TEXT = "Hello from voxserve: this sentence was generated, decoded and streamed as it was spoken."


def _pack(args: argparse.Namespace) -> Path:
    from voxserve.families.pack import Pack
    from voxserve.random_packs.writer import ensure_default_pack

    return (Pack.open(args.pack) if args.pack else ensure_default_pack()).root


def cmd_pack(args: argparse.Namespace) -> int:
    from voxserve.random_packs.writer import write_random_pack

    size = getattr(args, "size", "tiny")
    pack = write_random_pack(Path(args.dir), size, seed=args.seed, family=args.family, speakers=args.speakers)
    kind = f"{pack.family.name} speaker-name" if args.speakers else pack.family.name
    print(f"wrote {size} random {kind} pack to {pack.root}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib

    app = importlib.import_module(f"voxserve.{args.service}.app")
    config = importlib.import_module(f"voxserve.{args.service}.config")
    overrides = {"port": args.port}
    if args.service != "gateway":
        overrides["pack"] = args.pack
    asyncio.run(app.run(config.load(**overrides)))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from voxserve.stack import LocalStack, Ports

    stack = LocalStack(
        _pack(args), Ports(gateway=args.port), log_dir=Path(args.log_dir) if args.log_dir else None
    )
    started = time.monotonic()
    stack.start()
    print(
        f"voxserve up in {time.monotonic() - started:.1f} s: gateway {stack.ports.address('gateway')} "
        f"(generator {stack.ports.address('generator')}, vocoder {stack.ports.address('vocoder')}); "
        "Ctrl-C stops",
        flush=True,
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping:
            for name, process in stack.processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with code {process.returncode}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    finally:
        stack.stop()
    return 0


# Output file suffix -> the encoding `say` asks for; .wav is written from PCM16 with exact sizes.
ENCODING_OF_SUFFIX = {
    ".wav": "PCM16",
    ".pcm": "PCM16",
    ".raw": "PCM16",
    ".ulaw": "MULAW",
    ".ogg": "OGG_OPUS",
    ".opus": "OGG_OPUS",
}


def _print_synthesis(result: object, out: Path) -> None:
    from voxserve.client import Synthesis

    assert isinstance(result, Synthesis)
    s = result.summary
    print(
        f"wrote {out}: {s.audio_seconds:.2f} s of audio at {result.sample_rate} Hz "
        f"({s.semantic_tokens} semantic tokens, {s.segments} segment{'s' if s.segments != 1 else ''})"
    )
    print(f"first-audio latency: {result.first_audio_seconds * 1000:.0f} ms")
    print(f"real-time factor: {s.real_time_factor:.3f}")


def _say(address: str, args: argparse.Namespace) -> None:
    from voxserve.client import ClientSecurity, synthesize, synthesize_stream
    from voxserve.gateway.audio import write_wav_pcm16
    from voxserve.v1 import generator_pb2, speech_pb2

    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in ENCODING_OF_SUFFIX:
        raise SystemExit(f"error: output suffix {suffix!r}; use one of {', '.join(ENCODING_OF_SUFFIX)}")
    encoding = speech_pb2.AudioEncoding.Value(ENCODING_OF_SUFFIX[suffix])
    sampling = generator_pb2.SamplingParams()
    if args.max_tokens:
        sampling.max_tokens = args.max_tokens
    options = {
        "security": ClientSecurity(api_key=args.api_key, ca_file=args.ca),
        "voice": args.voice,
        "sampling": sampling,
        "seed": args.seed,
        "encoding": encoding,
        "sample_rate": args.sample_rate,
    }
    if args.stream:
        # As a language model would send it: a few characters at a time.
        text = args.text
        deltas = [text[i : i + 4] for i in range(0, len(text), 4)]
        result = synthesize_stream(address, deltas, delay_seconds=0.005, **options)
    else:
        result = synthesize(address, args.text, **options)
    if suffix == ".wav":
        write_wav_pcm16(out, result.data, result.sample_rate)
    else:
        out.write_bytes(result.data)
    _print_synthesis(result, out)


def _say_on_local_stack(pack: Path, args: argparse.Namespace) -> None:
    """Start the three services on `pack`, speak `args.text` through them, stop them."""
    from voxserve.stack import LocalStack, Ports

    print(f"model pack: {pack}")
    started = time.monotonic()
    log_dir = Path(args.log_dir)
    with LocalStack(pack, Ports.free(), log_dir=log_dir) as stack:
        print(f"services ready in {time.monotonic() - started:.1f} s (logs in {log_dir})")
        _say(stack.ports.address("gateway"), args)


def cmd_say(args: argparse.Namespace) -> int:
    import grpc

    try:
        if args.pack is not None:
            _say_on_local_stack(_pack(args), args)
        else:
            _say(args.address, args)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    return 0


def cmd_voices(args: argparse.Namespace) -> int:
    """The voices of a registry file (default: the gateway's configured one) or of a running gateway."""
    import json

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
        rows = [
            {
                "id": v.id,
                "family": v.family,
                "sample_rate": v.sample_rate,
                "pack": v.pack,
                "controllable": v.controllable,
                "speaker": v.speaker,
                "description": v.description,
            }
            for v in voices
        ]
        print(json.dumps(rows, indent=2))
        return 0
    header = ("ID", "FAMILY", "RATE", "PACK", "STYLE", "SPEAKER", "DESCRIPTION")
    rows_text = [
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
    widths = [max(len(r[i]) for r in [header, *rows_text]) for i in range(6)]
    for row in [header, *rows_text]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[6])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    _say_on_local_stack(_pack(args), args)
    return 0


def setting_groups() -> list[tuple[str, type, str]]:
    """(title, config class, variable prefix) of every group of settings."""
    from voxserve.families.pack import HomeConfig
    from voxserve.gateway.config import PREFIX as GW
    from voxserve.gateway.config import GatewayConfig
    from voxserve.generator.config import PREFIX as GEN
    from voxserve.generator.config import GeneratorConfig
    from voxserve.vocoder.config import PREFIX as VOC
    from voxserve.vocoder.config import VocoderConfig

    return [
        ("all", HomeConfig, "VOXSERVE_"),
        ("gateway", GatewayConfig, GW),
        ("generator", GeneratorConfig, GEN),
        ("vocoder", VocoderConfig, VOC),
    ]


def cmd_config(args: argparse.Namespace) -> int:
    from voxserve.common.config import describe

    for title, cls, prefix in setting_groups():
        print(f"# {title}")
        for name, default, doc in describe(cls, prefix):
            print(f"{name}={default}\t# {doc}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    return health_probe.probe(args, "voxserve health")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="voxserve", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    pk = sub.add_parser("pack", help="write a model pack")
    pk_sub = pk.add_subparsers(dest="kind", required=True)
    tiny = pk_sub.add_parser("tiny", help="a tiny random pack in its family's upstream layout")
    rnd = pk_sub.add_parser("random", help="a random pack in its family's upstream layout, tiny or full size")
    rnd.add_argument("--size", choices=["tiny", "full"], default="tiny")
    for sp in (tiny, rnd):
        sp.add_argument("dir")
        sp.add_argument("--seed", type=int, default=1234)
        sp.add_argument(
            "--family",
            choices=["spark", "s3", "orpheus", "chatterbox"],
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
        sp.set_defaults(func=cmd_pack)

    sv = sub.add_parser("serve", help="run one service in the foreground (config from VOXSERVE_* variables)")
    sv.add_argument("service", choices=["generator", "vocoder", "gateway"])
    sv.add_argument("--pack", type=Path, default=None, help="model pack (generator, vocoder)")
    sv.add_argument("--port", type=int, default=None)
    sv.set_defaults(func=cmd_serve)

    up = sub.add_parser("up", help="run all three services locally until Ctrl-C")
    up.add_argument("--pack", type=Path, default=None, help="model pack; default: the embedded tiny pack")
    up.add_argument("--port", type=int, default=50051, help="gateway port")
    up.add_argument("--log-dir", default=".voxserve/logs")
    up.set_defaults(func=cmd_up)

    for name, helptext in (
        ("say", "synthesize TEXT through a running gateway"),
        ("demo", "start the services, synthesize a sentence, stop"),
    ):
        sp = sub.add_parser(name, help=helptext)
        if name == "say":
            sp.add_argument("text")
            sp.add_argument("--address", default="127.0.0.1:50051", help="gateway address")
            sp.add_argument(
                "--pack", type=Path, default=None, help="start the services on this pack for this one text"
            )
            sp.add_argument("--api-key", default=None, help="the gateway's API key (sent as a bearer token)")
            sp.add_argument("--ca", type=Path, default=None, help="CA certificate (PEM) of a TLS gateway")
            sp.add_argument(
                "--stream",
                action="store_true",
                help="send the text through SynthesizeStream, 4 characters every 5 ms (as an LLM would)",
            )
        else:
            sp.add_argument("--text", default=DEMO_TEXT)
            sp.add_argument("--pack", type=Path, default=None)
            sp.set_defaults(stream=False, api_key=None, ca=None)
        sp.add_argument("--seed", type=int, default=0)
        sp.add_argument("--log-dir", default=".voxserve/logs")
        sp.add_argument(
            "-o",
            "--output",
            default="demo.wav" if name == "demo" else "out.wav",
            help="output file; its suffix picks the encoding: .wav .pcm/.raw (PCM16), .ulaw (mu-law), "
            ".ogg/.opus (Opus)",
        )
        sp.add_argument(
            "--sample-rate",
            type=int,
            default=0,
            help="output rate 8000..48000; 0: the voice's own (.ulaw: 8000)",
        )
        sp.add_argument("--voice", default="default")
        sp.add_argument(
            "--max-tokens",
            type=int,
            default=None,
            help="cap on speech tokens (spark: 50 per second, s3: 25, orpheus: 82, 7 per SNAC frame)",
        )
        sp.set_defaults(func=cmd_say if name == "say" else cmd_demo)

    # Listed for --help only: main() hands `voxserve bench ...` to the bench package whole.
    sub.add_parser("bench", help="load and scaling benchmarks against the baseline (voxserve bench --help)")

    vs = sub.add_parser("voices", help="list the voices of a registry file or of a running gateway")
    vs.add_argument(
        "--file", type=Path, default=None, help="registry file; default: the gateway's configured one"
    )
    vs.add_argument("--address", default=None, help="ask a running gateway instead (host:port)")
    vs.add_argument("--json", action="store_true", help="print JSON")
    vs.set_defaults(func=cmd_voices)

    hc = sub.add_parser("health", help="check a service's gRPC health once; exit 0 only when SERVING")
    health_probe.add_arguments(hc)
    hc.set_defaults(func=cmd_health)

    cf = sub.add_parser("config", help="list every setting with its default")
    cf.set_defaults(func=cmd_config)
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


if __name__ == "__main__":
    sys.exit(main())
