"""`voxserve say TEXT`: synthesize through a running gateway, or through services started for it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Output file suffix -> the encoding `say` asks for; .wav is written from PCM16 with exact sizes.
ENCODING_OF_SUFFIX = {
    ".wav": "PCM16",
    ".pcm": "PCM16",
    ".raw": "PCM16",
    ".ulaw": "MULAW",
    ".ogg": "OGG_OPUS",
    ".opus": "OGG_OPUS",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text")
    parser.add_argument("--address", default="127.0.0.1:50051", help="gateway address")
    parser.add_argument(
        "--pack", type=Path, default=None, help="start the services on this pack for this one text"
    )
    parser.add_argument("--api-key", default=None, help="the gateway's API key (sent as a bearer token)")
    parser.add_argument("--ca", type=Path, default=None, help="CA certificate (PEM) of a TLS gateway")
    parser.add_argument(
        "--stream",
        action="store_true",
        help="send the text through SynthesizeStream, 4 characters every 5 ms (as an LLM would)",
    )
    add_synthesis_arguments(parser, default_output="out.wav")
    parser.set_defaults(func=run)


def add_synthesis_arguments(parser: argparse.ArgumentParser, default_output: str) -> None:
    """The options `say` and `demo` share: what to synthesize with and where to write it."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-dir", default=".voxserve/logs")
    parser.add_argument(
        "-o",
        "--output",
        default=default_output,
        help="output file; its suffix picks the encoding: .wav .pcm/.raw (PCM16), .ulaw (mu-law), "
        ".ogg/.opus (Opus)",
    )
    parser.add_argument(
        "--sample-rate",
        type=int,
        default=0,
        help="output rate 8000..48000; 0: the voice's own (.ulaw: 8000)",
    )
    parser.add_argument("--voice", default="default")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="cap on speech tokens (spark: 50 per second, s3: 25, orpheus: 82, 7 per SNAC frame)",
    )


def run(args: argparse.Namespace) -> int:
    import grpc

    try:
        if args.pack is not None:
            from voxserve.random_packs.writer import resolve_pack

            say_on_local_stack(resolve_pack(args.pack).root, args)
        else:
            say(args.address, args)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    return 0


def say(address: str, args: argparse.Namespace) -> None:
    """Speak `args.text` through the gateway at `address` into `args.output`."""
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


def say_on_local_stack(pack: Path, args: argparse.Namespace) -> None:
    """Start the three services on `pack`, speak `args.text` through them, stop them."""
    from voxserve.stack import LocalStack, Ports

    print(f"model pack: {pack}")
    started = time.monotonic()
    log_dir = Path(args.log_dir)
    with LocalStack(pack, Ports.free(), log_dir=log_dir) as stack:
        print(f"services ready in {time.monotonic() - started:.1f} s (logs in {log_dir})")
        say(stack.ports.address("gateway"), args)


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
