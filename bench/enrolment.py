"""Spark voice enrolment cost: `BiCodec.encode_voice` on a reference recording.

`python -m bench.enrolment --size tiny|full` (also `python -m bench enrolment`) writes a random
BiCodec and wav2vec2 of that size (the full size is about 1.9 GB, in a temporary directory unless
`--pack` names a pack to reuse or to write once), then times encoding a 10 s reference (a voiced
tone and noise): the first encode, which loads the encoders, and the median of the next ones, with
and without the reference's semantic ids (the wav2vec2 path). Prints the figures as JSON.

Timings use one torch thread unless told otherwise, as the vocoder service does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# torch and the codec are imported where they are used: `python -m bench` builds this command's
# arguments without loading them.

SAMPLE_RATE = 16000


def reference_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """A voiced tone with a syllable-rate envelope, plus noise: float32 mono at 16 kHz."""
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * k * 140 * t) / k for k in range(1, 8))
    noise = np.random.default_rng(seed).standard_normal(t.size) * 0.05
    return (0.3 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + noise).astype(np.float32)


def write_enrolment_pack(root: Path, size: str, seed: int = 0) -> Path:
    """BiCodec (decode and encode sides) and wav2vec2 of `size`, as the spark pack writer does."""
    from voxserve.random_packs.tiny_bicodec import FULL_BICODEC_CONFIG, TINY_BICODEC_CONFIG, write_bicodec
    from voxserve.random_packs.tiny_wav2vec2 import write_wav2vec2

    write_bicodec(root, seed, FULL_BICODEC_CONFIG if size == "full" else TINY_BICODEC_CONFIG)
    write_wav2vec2(root, seed, size)
    return root


def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def measure_enrolment(
    pack: Path, *, seconds: float = 10.0, repeats: int = 3, device: str = "cpu"
) -> dict[str, Any]:
    """Encode timings on `pack` for a `seconds`-long reference."""
    import torch

    from voxserve.vocoder.codecs.bicodec import BiCodec

    load = time.perf_counter()
    codec = BiCodec.from_pack(pack, device=device)
    load_s = time.perf_counter() - load
    audio = reference_audio(seconds)

    def encode(reference_tokens: bool) -> object:
        out = codec.encode_voice(audio, SAMPLE_RATE, reference_tokens)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return out

    first = _seconds(lambda: encode(True))
    with_tokens = [_seconds(lambda: encode(True)) for _ in range(repeats)]
    globals_only = [_seconds(lambda: encode(False)) for _ in range(repeats)]
    encoded = codec.encode_voice(audio, SAMPLE_RATE, True)
    return {
        "pack": str(pack),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "reference_seconds": seconds,
        "codec_load_s": round(load_s, 4),
        "first_encode_s": round(first, 4),
        "encode_s": round(statistics.median(with_tokens), 4),
        "encode_global_ids_only_s": round(statistics.median(globals_only), 4),
        "global_ids": len(encoded.global_ids),
        "semantic_ids": len(encoded.reference_semantic_ids),
    }


def run_enrolment(
    size: str, *, pack: Path | None = None, seconds: float = 10.0, repeats: int = 3, device: str = "cpu"
) -> dict[str, Any]:
    """Measure on `pack` (written first if it has no BiCodec yet) or on a temporary pack of `size`."""
    if pack is not None:
        if not (pack / "BiCodec" / "model.safetensors").is_file():
            write_enrolment_pack(pack, size)
        return {"size": size, **measure_enrolment(pack, seconds=seconds, repeats=repeats, device=device)}
    with tempfile.TemporaryDirectory(prefix="enrolment-") as scratch:
        root = write_enrolment_pack(Path(scratch), size)
        return {"size": size, **measure_enrolment(root, seconds=seconds, repeats=repeats, device=device)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=["tiny", "full"], default="tiny")
    p.add_argument("--pack", type=Path, default=None, help="pack to use (written there first if empty)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the reference")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the service uses 1)")


def run_from_args(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    result = run_enrolment(
        args.size, pack=args.pack, seconds=args.seconds, repeats=args.repeats, device=args.device
    )
    print(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.enrolment", description=__doc__)
    add_arguments(p)
    return run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
