"""Decode time per audio second, per codec: voxserve offline, voxserve streamed, and upstream.

`python -m bench decoders [--size full] [--seconds 10] [--repeats 3]` writes each codec's
decode part of a random pack (BiCodec of Spark-TTS-0.5B, Chatterbox's S3Gen, SNAC 24 kHz) into
a scratch directory, draws one random utterance per codec and times three decodes of it, all on
the same weights, with one torch thread by default:

- voxserve offline: the whole utterance at once, through the codec's own whole-utterance path
  (S3Gen: `decode_offline`; BiCodec and SNAC: one window covering every token, no context);
- voxserve streamed: the windows the vocoder's scheduler decodes for one stream whose tokens
  have all arrived, replayed through `codec.decode_windows` (`bench.streamed.stream_in_chunks`):
  the first chunk, then the ladder doubling up to the largest chunk, End releasing the rest;
  each window carries the service's left context and lookahead (chunk sizes from the pack
  family's defaults, context as the service sets it at start-up). It is not the live
  `Scheduler`, whose chunk sizes also follow the client's lead and the measured cost;
- upstream: the model from its PyPI package, with voxserve's weights loaded into it by name
  (`bench/upstream_decoders.py`). BiCodec has none: Spark-TTS is not published on PyPI.

Each repeat runs the three decodes back to back, so a busy machine slows them alike; a short
utterance decoded once each way first takes the first-call costs out of the timings. The figure
is the median over repeats of decode seconds divided by the utterance's audio seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.report import machine_facts
from bench.streamed import StreamedDecode, stream_in_chunks, write_result
from bench.upstream_decoders import Upstream, s3gen_upstream, snac_upstream
from voxserve.families import chatterbox, orpheus, spark
from voxserve.families.family import Family
from voxserve.vocoder.app import chunk_policy
from voxserve.vocoder.batch import Batch
from voxserve.vocoder.codecs.base import Codec, VoiceConditioning
from voxserve.vocoder.config import VocoderConfig
from voxserve.vocoder.stream import ChunkPolicy, DecodeStream

CODECS = ("bicodec", "s3gen", "snac")
SIZES = ("tiny", "full")
WAYS = ("voxserve_offline", "voxserve_streamed", "upstream_offline")
NO_BICODEC_UPSTREAM = (
    "BiCodec's upstream is Spark-TTS, which is not published on PyPI: there is no package to install"
)
# The warm-up utterance, decoded once each way before the timed repeats.
WARMUP_SECONDS = 1.0


@dataclass(frozen=True)
class DecoderSettings:
    size: str = "full"
    seconds: float = 10.0
    repeats: int = 3
    codecs: tuple[str, ...] = CODECS
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"size {self.size!r} is unknown; sizes: {', '.join(SIZES)}")
        unknown = sorted(set(self.codecs) - set(CODECS))
        if unknown:
            raise ValueError(f"unknown codecs {', '.join(unknown)}; known: {', '.join(CODECS)}")
        if self.repeats < 1 or self.seconds <= 0 or self.threads < 1:
            raise ValueError("repeats and threads must be >= 1 and seconds > 0")


@dataclass
class Subject:
    """One codec loaded for the bench: how to decode an utterance each way."""

    codec: Codec
    conditioning: Any
    family: Family
    policy: ChunkPolicy
    offline: Callable[[list[Any], int], torch.Tensor]
    upstream: Upstream
    facts: dict[str, Any] = field(default_factory=dict)

    def random_tokens(self, count: int, generator: torch.Generator) -> list[Any]:
        """Tokens as a stream sends them: ids, or frames of codes as tuples."""
        codes = self.codec.codes_per_token
        if codes == 1:
            return torch.randint(0, self.codec.token_vocab_size, (count,), generator=generator).tolist()
        frames = torch.randint(0, self.codec.token_vocab_size, (count, codes), generator=generator)
        return [tuple(int(c) for c in frame) for frame in frames]


def whole_window(codec: Codec, conditioning: Any, tokens: Sequence[Any], seed: int) -> torch.Tensor:
    """Every token in one window, no context: the stream's own path with a single chunk."""
    stream = DecodeStream(
        conditioning, codec.samples_per_token, codec.sample_rate, state=codec.open_stream(conditioning, seed)
    )
    stream.append(list(tokens))
    stream.end()
    window = stream.next_window(ChunkPolicy(len(tokens), len(tokens), 0, 0), len(tokens))
    assert window is not None and window.final and window.length == len(tokens)
    [samples] = codec.decode_windows(Batch.from_requests([window], {stream.id: stream}).rows)
    return samples


def _policy(codec: Codec, family: Family) -> ChunkPolicy:
    return chunk_policy(VocoderConfig(), codec, family)


def snac_subject(directory: Path, settings: DecoderSettings) -> Subject:
    from voxserve.random_packs.tiny_snac import SNAC_24KHZ, TINY, write_snac
    from voxserve.vocoder.codecs.snac.codec import SnacCodec

    config = SNAC_24KHZ if settings.size == "full" else TINY
    write_snac(directory, config, settings.seed)
    codec = SnacCodec.from_pack(directory)
    codec.condition(VoiceConditioning())  # SNAC takes no voice: its streams carry no conditioning
    conditioning = None

    return Subject(
        codec,
        conditioning,
        orpheus.FAMILY,
        _policy(codec, orpheus.FAMILY),
        lambda tokens, seed: whole_window(codec, conditioning, tokens, seed),
        snac_upstream(codec, config),
        {"config": config},
    )


def bicodec_subject(directory: Path, settings: DecoderSettings) -> Subject:
    from voxserve.random_packs.tiny_bicodec import FULL_BICODEC_CONFIG, TINY_BICODEC_CONFIG, write_bicodec
    from voxserve.vocoder.codecs.bicodec import BiCodec

    write_bicodec(
        directory, settings.seed, FULL_BICODEC_CONFIG if settings.size == "full" else TINY_BICODEC_CONFIG
    )
    codec = BiCodec.from_pack(directory)
    conditioning = codec.condition(codec.warmup_voice(settings.seed))

    return Subject(
        codec,
        conditioning,
        spark.FAMILY,
        _policy(codec, spark.FAMILY),
        lambda tokens, seed: whole_window(codec, conditioning, tokens, seed),
        Upstream(None, None, NO_BICODEC_UPSTREAM),
        {"decoder_channels": codec.config.decoder.channels},
    )


def s3gen_subject(directory: Path, settings: DecoderSettings) -> Subject:
    from voxserve.random_packs.s3gen_checkpoint import write_random_s3gen
    from voxserve.vocoder.codecs.s3gen.codec import CHECKPOINT_FILE, CONFIG_FILE, S3GenCodec, config_to_json
    from voxserve.vocoder.codecs.s3gen.config import FULL, TINY
    from voxserve.vocoder.codecs.s3gen.offline import decode_offline
    from voxserve.vocoder.codecs.s3gen.voice import S3Voice

    config = FULL if settings.size == "full" else TINY
    write_random_s3gen(directory / CHECKPOINT_FILE, config, settings.seed)
    (directory / CONFIG_FILE).write_text(config_to_json(config) + "\n")
    codec = S3GenCodec.from_pack(directory)
    conditioning = codec.condition(codec.warmup_voice(settings.seed))
    voice = S3Voice(conditioning.prompt_tokens, conditioning.prompt_mel, conditioning.xvector)

    def offline(tokens: list[Any], seed: int) -> torch.Tensor:
        return decode_offline(codec.model, torch.tensor(tokens, dtype=torch.int64), voice, seed)

    upstream = s3gen_upstream(directory / CHECKPOINT_FILE, voice, full_size=settings.size == "full")
    return Subject(
        codec,
        conditioning,
        chatterbox.FAMILY,
        _policy(codec, chatterbox.FAMILY),
        offline,
        upstream,
        {"prompt_tokens": int(voice.prompt_tokens.numel()), "flow_steps": config.flow.steps},
    )


BUILDERS: dict[str, Callable[[Path, DecoderSettings], Subject]] = {
    "bicodec": bicodec_subject,
    "s3gen": s3gen_subject,
    "snac": snac_subject,
}


def measure(subject: Subject, settings: DecoderSettings) -> dict[str, Any]:
    """Time the three decodes of one random utterance of `settings.seconds`."""
    codec = subject.codec
    tokens_per_second = codec.sample_rate / codec.samples_per_token
    generator = torch.Generator().manual_seed(settings.seed)
    count = max(1, round(settings.seconds * tokens_per_second))
    tokens = subject.random_tokens(count, generator)
    audio_seconds = count * codec.samples_per_token / codec.sample_rate
    seed, upstream = settings.seed, subject.upstream.decode

    def ways(utterance: list[Any]) -> dict[str, Callable[[], Any] | None]:
        return {
            "voxserve_offline": lambda: subject.offline(utterance, seed),
            "voxserve_streamed": lambda: stream_in_chunks(
                codec, subject.conditioning, utterance, seed, subject.policy
            ),
            "upstream_offline": None if upstream is None else lambda: upstream(utterance, seed),
        }

    warmup = subject.random_tokens(max(1, round(WARMUP_SECONDS * tokens_per_second)), generator)
    for decode in ways(warmup).values():
        if decode is not None:
            decode()
    timings: dict[str, list[float]] = {way: [] for way in WAYS}
    outputs: dict[str, Any] = {}
    for _ in range(settings.repeats):
        for way, decode in ways(tokens).items():
            if decode is not None:
                started = time.perf_counter()
                outputs[way] = decode()
                timings[way].append(time.perf_counter() - started)
    figures: dict[str, Any] = {
        f"{way}_s_per_audio_s": statistics.median(timings[way]) / audio_seconds if timings[way] else None
        for way in WAYS
    }
    streamed: StreamedDecode = outputs["voxserve_streamed"]
    upstream_figure = figures["upstream_offline_s_per_audio_s"]
    return {
        **figures,
        "upstream_package": subject.upstream.package,
        "upstream_reason": subject.upstream.reason,
        "streamed_no_slower_than_upstream": None
        if upstream_figure is None
        else figures["voxserve_streamed_s_per_audio_s"] <= upstream_figure,
        "tokens": count,
        "audio_seconds": audio_seconds,
        "samples_per_token": codec.samples_per_token,
        "samples": {way: int(out.numel()) for way, out in outputs.items() if isinstance(out, torch.Tensor)}
        | {"voxserve_streamed": int(streamed.audio.numel())},
        "policy": asdict(subject.policy),
        "streamed_windows": len(streamed.seconds),
        "streamed_first_chunk_s": streamed.seconds[0],
        "timings_s": timings,
        **subject.facts,
    }


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_decoders(settings: DecoderSettings, out_dir: Path) -> dict[str, Any]:
    """Measure every codec of `settings`; writes `decoders-<stamp>.json` under `out_dir`."""
    started = time.perf_counter()
    load_before = os.getloadavg()
    codecs: dict[str, Any] = {}
    with torch_threads(settings.threads):
        for name in settings.codecs:
            with tempfile.TemporaryDirectory(prefix=f"decoders-{name}-") as scratch:
                codecs[name] = measure(BUILDERS[name](Path(scratch), settings), settings)
    result: dict[str, Any] = {
        "benchmark": "decoders",
        "machine": machine_facts(),
        "settings": asdict(settings),
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
        "wall_seconds": time.perf_counter() - started,
        "streamed": "the scheduler's windows for one stream with every token arrived, replayed through "
        "codec.decode_windows: first chunk, then the ladder up to the largest, context included",
        "codecs": codecs,
    }
    return write_result(out_dir, "decoders", result)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(result: dict[str, Any]) -> str:
    header = f"{'codec':<8} {'offline':>9} {'streamed':>9} {'upstream':>9}  upstream package / why none"
    lines = ["decode seconds per audio second (median)", header, "-" * len(header)]
    for name, c in result["codecs"].items():
        lines.append(
            f"{name:<8} {_cell(c['voxserve_offline_s_per_audio_s']):>9} "
            f"{_cell(c['voxserve_streamed_s_per_audio_s']):>9} "
            f"{_cell(c['upstream_offline_s_per_audio_s']):>9}"
            f"  {c['upstream_package'] or c['upstream_reason']}"
        )
    return "\n".join(lines)


def run_from_args(args: argparse.Namespace) -> int:
    settings = DecoderSettings(
        size=args.size,
        seconds=args.seconds,
        repeats=args.repeats,
        codecs=tuple(args.codecs),
        threads=args.threads,
        seed=args.seed,
    )
    result = run_decoders(settings, Path(args.out))
    print(table(result))
    print(f"\nwritten: {result['written']}")
    return 0
