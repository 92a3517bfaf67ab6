"""Vocoder compute per second of audio as utterances get longer: voxserve vs the baseline.

Both strategies decode the same random tokens on a pack's BiCodec, in this process, one window
per forward, so only the decode schedule differs:

- voxserve: the windows the vocoder's scheduler decodes for one stream (`DecodeStream.next_window`
  with the service's default chunk policy and measured context), every token decoded once plus
  a fixed context, so the cost per audio second stays flat; `voxserve` with the largest chunks
  (a client seconds ahead, or a busy device), `voxserve-small` with first-size chunks (what an
  idle device decodes while the client holds under two seconds);
- baseline: the decode calls of `MonolithicRunner`'s schedule (`baseline_decode_windows`), which
  re-decodes the whole buffer (or its last 128 tokens) every 48 tokens and the whole buffer at
  the end, so the cost per audio second grows with length.

Timings use one torch thread so they are stable and comparable across machines' core counts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bench.seed_loop import baseline_decode_windows
from voxserve.families import spark
from voxserve.vocoder.app import chunk_policy
from voxserve.vocoder.codecs.base import VoiceConditioning
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.config import VocoderConfig
from voxserve.vocoder.stream import ChunkPolicy, DecodeStream

SCALING_TOKENS = (250, 3000)
"""5 s and 60 s of BiCodec audio (50 tokens per second)."""
BASELINE_WINDOW_TOKENS = 128
STRATEGIES = ("voxserve", "voxserve-small", "baseline", f"baseline-window{BASELINE_WINDOW_TOKENS}")
SEED = 0

Span = tuple[int, int]
"""Tokens [start, end) one decode call covers, context included."""


def vocoder_policy(codec: BiCodec, config: VocoderConfig | None = None) -> ChunkPolicy:
    """The vocoder service's chunk policy for this codec: its default chunk sizes and the context
    it would measure at start-up."""
    return chunk_policy(config or VocoderConfig(), codec, spark.FAMILY)


def voxserve_decode_windows(
    n_tokens: int, policy: ChunkPolicy, chunk_tokens: int | None = None
) -> list[Span]:
    """The windows the vocoder decodes for a stream of `n_tokens` tokens followed by End, when
    every chunk after the first has `chunk_tokens` tokens (default: the largest).

    Feeding every token up front gives the same windows as a live stream: a window's extent
    depends only on what has been decoded and the chunk size, and it is taken once its
    lookahead is there.
    """
    later = chunk_tokens or policy.max_chunk_tokens
    stream = DecodeStream(conditioning=torch.zeros(0), samples_per_token=1, sample_rate=1)
    stream.append([0] * n_tokens)
    spans: list[Span] = []
    while not stream.finished:
        size = policy.first_chunk_tokens if stream.decoded_tokens == 0 else later
        window = stream.next_window(policy, size)
        if window is None:
            stream.end()
            continue
        spans.append((window.start - window.left, window.end + window.right))
        stream.deliver(window, torch.zeros(0), now=0.0)
    return spans


def strategy_windows(strategy: str, n_tokens: int, policy: ChunkPolicy) -> list[Span]:
    if strategy == "voxserve":
        return voxserve_decode_windows(n_tokens, policy)
    if strategy == "voxserve-small":
        return voxserve_decode_windows(n_tokens, policy, policy.first_chunk_tokens)
    if strategy == "baseline":
        return baseline_decode_windows(n_tokens)
    if strategy == f"baseline-window{BASELINE_WINDOW_TOKENS}":
        return baseline_decode_windows(n_tokens, BASELINE_WINDOW_TOKENS)
    raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def tokens_decoded(spans: Sequence[Span]) -> int:
    return sum(end - start for start, end in spans)


def _time_decodes(
    codec: BiCodec, tokens: torch.Tensor, conditioning: torch.Tensor, spans: list[Span]
) -> float:
    started = time.perf_counter()
    for start, end in spans:
        codec.decode(tokens[:, start:end], conditioning)
    return time.perf_counter() - started


def length_label(n_tokens: int, codec: BiCodec) -> str:
    return f"{n_tokens * codec.samples_per_token / codec.sample_rate:g} s"


def run_scaling(
    pack_dir: Path,
    repeats: int = 3,
    *,
    lengths: Sequence[int] = SCALING_TOKENS,
    policy: ChunkPolicy | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """strategy -> length label (e.g. "5 s") -> metrics; decode_seconds is the median of `repeats`."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        codec = BiCodec.from_pack(pack_dir)
        policy = policy or vocoder_policy(codec)
        gen = torch.Generator().manual_seed(SEED)
        voice = VoiceConditioning(
            global_ids=tuple(
                torch.randint(0, codec.global_vocab_size, (codec.global_token_count,), generator=gen).tolist()
            )
        )
        conditioning = codec.condition(voice).unsqueeze(0)
        codec.decode(torch.zeros(1, policy.first_chunk_tokens, dtype=torch.int64), conditioning)  # warm-up
        result: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in STRATEGIES}
        for n in lengths:
            tokens = torch.randint(0, codec.token_vocab_size, (1, n), generator=gen)
            audio_seconds = n * codec.samples_per_token / codec.sample_rate
            for strategy in STRATEGIES:
                spans = strategy_windows(strategy, n, policy)
                seconds = statistics.median(
                    _time_decodes(codec, tokens, conditioning, spans) for _ in range(repeats)
                )
                decoded = tokens_decoded(spans)
                result[strategy][length_label(n, codec)] = {
                    "tokens": n,
                    "audio_seconds": audio_seconds,
                    "decode_calls": len(spans),
                    "tokens_decoded": decoded,
                    "decoded_per_token": decoded / n if n else 0.0,
                    "decode_seconds": seconds,
                    "compute_per_audio_second": seconds / audio_seconds if n else 0.0,
                }
        return result
    finally:
        torch.set_num_threads(threads)


def format_table(result: dict[str, dict[str, dict[str, Any]]]) -> str:
    header = (
        f"{'strategy':<20} {'length':>7} {'calls':>6} {'tokens decoded':>15} {'per token':>10} "
        f"{'decode s':>9} {'s per audio s':>14}"
    )
    lines = [header, "-" * len(header)]
    for strategy, lengths in result.items():
        for label, m in lengths.items():
            lines.append(
                f"{strategy:<20} {label:>7} {m['decode_calls']:>6} {m['tokens_decoded']:>15} "
                f"{m['decoded_per_token']:>10.2f} {m['decode_seconds']:>9.3f} "
                f"{m['compute_per_audio_second']:>14.4f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, required=True, help="model pack directory")
    parser.add_argument("--repeats", type=int, default=3, help="timings per cell; the median is kept")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    codec = BiCodec.from_pack(args.pack)
    policy = vocoder_policy(codec)
    result = run_scaling(args.pack, args.repeats, policy=policy)
    print(
        f"chunk policy: first {policy.first_chunk_tokens}, largest {policy.max_chunk_tokens}, "
        f"context {policy.left_context_tokens} tokens each side; 1 torch thread, median of {args.repeats}"
    )
    print(format_table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
