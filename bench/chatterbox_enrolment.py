"""Chatterbox voice enrolment cost, part by part: the voice encoder (T3's speaker embedding), the
S3 speech tokenizer (the flow's and T3's prompt tokens), CAMPPlus (the x-vector) and the prompt
mel, on a 10 s reference at 24 kHz, as `S3GenCodec.encode_voice` runs them.

`python -m bench.chatterbox_enrolment --size tiny|full` (also `python -m bench
chatterbox-enrolment`) writes the enrolment tensors of that size with random weights (the full
speech tokenizer is 1280 wide and 6 layers deep; CAMPPlus and the voice encoder have one size),
loads them and prints the median time of each part as JSON. One torch thread unless told
otherwise, as the vocoder service runs.
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

SAMPLE_RATE = 24000


def reference_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """A voiced tone with a syllable-rate envelope, plus noise: float32 mono at 24 kHz."""
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * k * 140 * t) / k for k in range(1, 8))
    noise = np.random.default_rng(seed).standard_normal(t.size) * 0.05
    return (0.3 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + noise).astype(np.float32)


def _median_seconds(call: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 4)


def measure(root: Path, size: str, *, seconds: float = 10.0, repeats: int = 3) -> dict[str, Any]:
    import torch
    from safetensors.torch import save_file

    from voxserve.random_packs.tiny_campplus import campplus_tensors
    from voxserve.random_packs.tiny_speech_tokenizer import speech_tokenizer_tensors
    from voxserve.random_packs.tiny_voice_encoder import write_voice_encoder
    from voxserve.vocoder.codecs.s3gen.campplus import load_campplus, resample_24k_to_16k
    from voxserve.vocoder.codecs.s3gen.enrolment import (
        FLOW_CLIP_SECONDS,
        T3_CLIP_SECONDS,
        T3_MAX_PROMPT_TOKENS,
        TOKENIZER_RATE,
        resample_like_librosa,
    )
    from voxserve.vocoder.codecs.s3gen.prompt_mel import prompt_mel
    from voxserve.vocoder.codecs.s3gen.speech_tokenizer import load_speech_tokenizer
    from voxserve.vocoder.codecs.s3gen.voice_encoder import load_voice_encoder

    weights, ve = root / "s3gen.safetensors", root / "ve.safetensors"
    save_file({**speech_tokenizer_tensors(0, size), **campplus_tensors(0)}, str(weights))
    write_voice_encoder(ve, 0)
    start = time.perf_counter()
    tokenizer, campplus, encoder = (
        load_speech_tokenizer(weights),
        load_campplus(weights),
        load_voice_encoder(ve),
    )
    load_s = time.perf_counter() - start

    audio = reference_audio(seconds)
    clip = audio[: FLOW_CLIP_SECONDS * SAMPLE_RATE].copy()
    clip16 = resample_24k_to_16k(clip)
    whole16 = resample_like_librosa(audio)
    t3_clip = whole16[: T3_CLIP_SECONDS * TOKENIZER_RATE]
    with torch.inference_mode():
        parts = {
            "resample_s": _median_seconds(
                lambda: (resample_24k_to_16k(clip), resample_like_librosa(audio)), repeats
            ),
            "voice_encoder_s": _median_seconds(lambda: encoder.speaker_embedding(whole16), repeats),
            "tokenizer_s": _median_seconds(
                lambda: (
                    tokenizer.tokens(clip16),
                    tokenizer.tokens(t3_clip, max_tokens=T3_MAX_PROMPT_TOKENS),
                ),
                repeats,
            ),
            "campplus_s": _median_seconds(lambda: campplus.xvector_16k(clip16), repeats),
            "mel_s": _median_seconds(lambda: prompt_mel(torch.from_numpy(clip)), repeats),
        }
    return {
        "size": size,
        "torch_threads": torch.get_num_threads(),
        "reference_seconds": seconds,
        "load_s": round(load_s, 4),
        **parts,
        "total_s": round(sum(parts.values()), 4),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=["tiny", "full"], default="tiny")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the reference")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the service uses 1)")


def run_from_args(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="chatterbox-enrolment-") as scratch:
        result = measure(Path(scratch), args.size, seconds=args.seconds, repeats=args.repeats)
    print(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.chatterbox_enrolment", description=__doc__)
    add_arguments(p)
    return run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
