"""One stream decoded chunk by chunk through the vocoder's own stream and batch code, timed, and
the measures the streaming benchmarks compare it with: SNR against a reference, and the largest
sample-to-sample jump at chunk seams against the largest inside chunks; and how their results are
written."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from voxserve.vocoder.batch import Batch
from voxserve.vocoder.codecs.base import Codec
from voxserve.vocoder.stream import ChunkPolicy, DecodeStream


@dataclass
class StreamedDecode:
    chunks: list[torch.Tensor]
    seconds: list[float]
    """Decode time of each chunk."""

    @property
    def audio(self) -> torch.Tensor:
        return torch.cat(self.chunks) if self.chunks else torch.zeros(0)


def stream_in_chunks(
    codec: Codec, conditioning: Any, tokens: Sequence[Any], seed: int, policy: ChunkPolicy
) -> StreamedDecode:
    """Decode `tokens` as the vocoder streams them when all have arrived: chunks climb the
    policy's ladder (first size, doubling up to the largest), then End releases the rest.
    `conditioning` is what the codec's `condition` returned for the stream's voice."""
    stream = DecodeStream(
        conditioning, codec.samples_per_token, codec.sample_rate, state=codec.open_stream(conditioning, seed)
    )
    stream.append(list(tokens))
    ladder = iter(policy.sizes)
    size = next(ladder)
    out = StreamedDecode([], [])
    while not stream.finished:
        window = stream.next_window(policy, size)
        if window is None:
            stream.end()
            continue
        started = time.perf_counter()
        [samples] = codec.decode_windows(Batch.from_requests([window], {stream.id: stream}).rows)
        out.seconds.append(time.perf_counter() - started)
        out.chunks.append(samples)
        stream.deliver(window, samples, 0.0)
        size = next(ladder, policy.max_chunk_tokens)
    return out


def snr_db(reference: torch.Tensor, other: torch.Tensor) -> float:
    noise = (other.double() - reference.double()).pow(2).sum()
    return float(10 * torch.log10(reference.double().pow(2).sum() / noise)) if noise > 0 else float("inf")


def seam_jumps(chunks: list[torch.Tensor]) -> tuple[float, float]:
    """Largest |x[n+1] - x[n]| across chunk seams, and inside chunks."""
    audio = torch.cat(chunks)
    jumps = (audio[1:] - audio[:-1]).abs()
    seams = torch.tensor(
        [int(n) - 1 for n in torch.cumsum(torch.tensor([c.numel() for c in chunks]), 0)[:-1]]
    )
    inside = jumps.clone()
    if seams.numel():
        inside[seams] = 0
    return (float(jumps[seams].max()) if seams.numel() else 0.0), float(inside.max())


def write_result(out_dir: Path, prefix: str, result: dict[str, object]) -> dict[str, object]:
    """Write `result` as `<prefix>-<time>.json` under `out_dir`; returns it with "written" added."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    result["written"] = str(path)
    return result
