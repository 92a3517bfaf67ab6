"""A long text (2,000 characters by default) three ways, side by side on one running stack:

- pipelined: voxserve's gateway pipeline — segment k+1 is generated and decoded while segment k
  streams (two segments in flight), and each segment's tokens reach the vocoder as generated;
- sequential: the same, but one segment at a time;
- whole segments: one segment at a time and each segment's tokens all generated before its
  decoding starts (how the earlier systems spoke long text).

Each run goes through the gateway's own `Synthesis` in this process (the gRPC hop to the client
is left out, the same for all three) against real generator and vocoder services. Recorded:
first-audio latency, total time, playback stalls of a client playing from its first byte, the
wait at each seam for the next segment's first audio, and the level continuity at every seam
(RMS just before, inside and just after each crossfade).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from bench.corpus import load_corpus
from bench.playback import underruns
from voxserve.gateway.config import load
from voxserve.gateway.pipeline import remote_runner
from voxserve.gateway.segmenter import split_text
from voxserve.gateway.synthesis import Synthesis
from voxserve.gateway.voices import VoiceRegistry
from voxserve.stack import LocalStack, Ports
from voxserve.v1 import generator_pb2, generator_pb2_grpc, speech_pb2, vocoder_pb2_grpc

MODES = ("pipelined", "sequential", "whole-segments")
LEVEL_WINDOW_SECONDS = 0.02


def long_text(chars: int) -> str:
    """The corpus' English lines, in order and repeated, cut at the last sentence within `chars`."""
    lines = [t.text for t in load_corpus() if t.kind != "hindi"]
    text = ""
    while len(text) < chars:
        for line in lines:
            if len(text) + len(line) + 1 > chars:
                return text
            text = f"{text} {line}".strip()
    return text


class _WholeSegmentCall:
    """A Generate call whose frames are handed on only once the whole segment is generated."""

    def __init__(self, call: Any):
        self.call = call

    def __aiter__(self) -> AsyncIterator[generator_pb2.TokenFrame]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[generator_pb2.TokenFrame]:
        frames = [frame async for frame in self.call]
        for frame in frames:
            yield frame

    def cancel(self) -> bool:
        return bool(self.call.cancel())


class _WholeSegmentGenerator:
    def __init__(self, stub: generator_pb2_grpc.GeneratorStub):
        self.stub = stub

    def Generate(self, request: generator_pb2.GenerateRequest, **kwargs: Any) -> _WholeSegmentCall:
        return _WholeSegmentCall(self.stub.Generate(request, **kwargs))


@dataclass
class Figures:
    mode: str
    segments: int
    first_audio_seconds: float
    total_seconds: float
    audio_seconds: float
    real_time_factor: float
    stalls: int
    stall_seconds: float
    semantic_tokens: int
    seam_wait_seconds: list[float]
    """Per seam: how long after segment k's last audio segment k+1's first audio was ready (0 when
    it was ready before): the gap a client with a small buffer would hear."""
    seam_level_db: list[float]
    """Per seam: the largest level change, in dB, between the 20 ms before the fade, the fade and
    the 20 ms after it."""


def seam_levels(audio: np.ndarray, seams: list[int], fade: int, window: int) -> list[float]:
    def rms(part: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(part, dtype=np.float64)))) + 1e-12

    levels = []
    for start in seams:
        before = rms(audio[max(0, start - window) : start])
        inside = rms(audio[start : start + fade])
        after = rms(audio[start + fade : start + fade + window])
        values = 20 * np.log10([before, inside, after])
        levels.append(round(float(values.max() - values.min()), 2))
    return levels


async def run_mode(mode: str, stack: LocalStack, text: str, max_tokens: int | None, seed: int) -> Figures:
    config = load(segments_in_flight=2 if mode == "pipelined" else 1)
    voice = VoiceRegistry.builtin().get("default")
    assert voice is not None
    sampling = generator_pb2.SamplingParams(seed=seed)
    if max_tokens:
        sampling.max_tokens = max_tokens
    request = speech_pb2.SynthesizeRequest(sampling=sampling)
    async with (
        grpc.aio.insecure_channel(stack.ports.address("generator")) as gen_channel,
        grpc.aio.insecure_channel(stack.ports.address("vocoder")) as voc_channel,
    ):
        generator: Any = generator_pb2_grpc.GeneratorStub(gen_channel)
        if mode == "whole-segments":
            generator = _WholeSegmentGenerator(generator)
        runner = remote_runner([generator], [vocoder_pb2_grpc.VocoderStub(voc_channel)])
        synthesis = Synthesis(runner, voice, request, config)

        async def texts() -> AsyncIterator[str]:
            for segment in split_text(text, config.segment_max_chars):
                yield segment

        started = time.monotonic()
        arrivals: list[tuple[float, int]] = []
        parts = []
        async for pcm in synthesis.audio(texts()):
            if pcm.size:
                arrivals.append((time.monotonic() - started, pcm.size))
                parts.append(pcm)
        total = time.monotonic() - started
    audio = np.concatenate(parts)
    rate = synthesis.sample_rate
    playback = underruns(arrivals, rate)
    fade = synthesis.stitcher.fade_samples
    _, semantic_tokens, _ = synthesis.totals()
    return Figures(
        mode=mode,
        segments=len(synthesis.segments),
        first_audio_seconds=round(arrivals[0][0], 4),
        total_seconds=round(total, 3),
        audio_seconds=round(audio.size / rate, 3),
        real_time_factor=round(total / (audio.size / rate), 4),
        stalls=playback.count,
        stall_seconds=round(playback.wait_seconds, 3),
        semantic_tokens=semantic_tokens,
        seam_wait_seconds=[
            round(max(0.0, (later.first_audio_at or 0.0) - (earlier.finished_at or 0.0)), 4)
            for earlier, later in zip(synthesis.segments, synthesis.segments[1:], strict=False)
        ],
        seam_level_db=seam_levels(audio, synthesis.stitcher.seams, fade, round(LEVEL_WINDOW_SECONDS * rate)),
    )


def run_long_text(
    pack: Path, out_dir: Path, *, chars: int = 2000, max_tokens: int | None = None, seed: int = 3
) -> dict[str, Any]:
    text = long_text(chars)
    log_dir = out_dir / "logs"
    with LocalStack(pack, Ports.free(), log_dir=log_dir) as stack:
        asyncio.run(run_mode("pipelined", stack, "Warm up the engine and the vocoder.", 50, seed))
        figures = [asyncio.run(run_mode(mode, stack, text, max_tokens, seed)) for mode in MODES]
    by_mode = {f.mode: f for f in figures}
    base = by_mode["whole-segments"]
    result = {
        "characters": len(text),
        "max_tokens_per_segment": max_tokens or "gateway default",
        "crossfade_ms": load().crossfade_ms,
        "figures": [asdict(f) for f in figures],
        "ratios_vs_whole_segments": {
            f.mode: {
                "first_audio": round(base.first_audio_seconds / f.first_audio_seconds, 2),
                "total": round(base.total_seconds / f.total_seconds, 2),
            }
            for f in figures
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out_dir / f"long-text-{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
