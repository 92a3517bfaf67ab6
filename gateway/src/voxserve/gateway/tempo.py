"""Pitch-preserving tempo change, streamed: FFmpeg's `atempo` filter (WSOLA) through PyAV.

One `atempo` stage covers 0.5..100; slower than 0.5 takes two stages, each the square root,
which FFmpeg's documentation recommends over one stage's wider range for quality.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import av
import av.filter
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

MIN_SPEED, MAX_SPEED = 0.25, 4.0


def stages(speed: float) -> list[float]:
    return [math.sqrt(speed)] * 2 if speed < 0.5 else [speed]


class Tempo:
    """Plays float32 mono audio `speed` times as fast at the same pitch (same rate)."""

    def __init__(self, rate: int, speed: float) -> None:
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise ValueError(f"speed {speed} is outside {MIN_SPEED}..{MAX_SPEED}")
        self._rate = rate
        self._pts = 0
        self._graph = av.filter.Graph()
        source = self._graph.add_abuffer(
            format="flt", sample_rate=rate, layout="mono", time_base=Fraction(1, rate)
        )
        chain = [source, *(self._graph.add("atempo", f"{s:.6f}") for s in stages(speed))]
        chain.append(self._graph.add("abuffersink"))
        for upstream, downstream in itertools.pairwise(chain):
            upstream.link_to(downstream)
        self._graph.configure()

    def process(self, pcm: F32) -> F32:
        if not len(pcm):
            return np.zeros(0, dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm, dtype=np.float32)[None], format="flt", layout="mono"
        )
        frame.sample_rate = self._rate
        frame.pts = self._pts
        self._pts += len(pcm)
        self._graph.push(frame)
        return self._pull()

    def finish(self) -> F32:
        """The filter's buffered tail, once the input has ended."""
        self._graph.push(None)
        return self._pull()

    def _pull(self) -> F32:
        out: list[F32] = []
        while True:
            try:
                frame = self._graph.pull()
            except (BlockingIOError, EOFError, av.error.EOFError):
                break
            out.append(frame.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
