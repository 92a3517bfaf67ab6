"""Decoding on the vocoder's device: batch buckets, CUDA graphs, pinned copies to host.

On a GPU a small forward costs about as much to launch (hundreds of small kernels, each queued
by the host) as to run. A CUDA graph records the kernels of one forward once and replays them
with one launch, but only for fixed shapes and fixed memory. So, for codecs whose forward has
static shapes and never waits for the host (`Codec.static_forward`: BiCodec's decoder,
SNAC's), each (batch bucket,
window length) is captured once at start-up, with static input and output buffers. A batch of n
rows then runs in the smallest bucket >= n: its rows are copied into the bucket's inputs, the
bucket's other rows are filled with copies of the last real row, the graph is replayed, and only
the real rows' samples are kept. These decoders treat rows independently (no statistics over the
batch, no attention across rows), so what fills the other rows cannot change a real row's
samples: they are those of an eager forward of the bucket, which differ from an unpadded forward
only by the float rounding that any two batch sizes differ by (kernels block their work by batch
size), the difference the scheduler already allows between a stream batched and alone. Shapes
not captured (a final window's odd length, more rows than the largest bucket) run eagerly,
exactly as without this module.

S3Gen runs eagerly, graphs or not: the flow's padded length follows the lengths of the voice
prompts in the batch, its mask comes from per-row lengths, and HiFT groups rows by per-stream
tail lengths and carries each stream's phase and tails from chunk to chunk on the host. There is
no fixed shape to capture, and since nothing is padded, no stream's state is ever touched by
another row.

On a CPU, `lanes` forwards may run at once, each called from its own thread (torch releases the
GIL inside its kernels, and with one intra-op thread a kernel runs on the thread that calls it).
A small decoder's convolutions gain little from intra-op threads, but forwards are independent
work: with one lane per core the cores stay busy whatever the lengths of the batches in flight.
`decode` is therefore safe to call from several threads at once on a CPU (there it changes no
state of its own but a count of forwards, and the codecs keep per-call state per thread); on a GPU
there is one lane.

Samples reach the host through one pinned buffer, copied on a side stream (so the copy does not
queue behind the next forward on the default stream), then copied out of the buffer into memory
each chunk owns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from voxserve.common.logging import get_logger
from voxserve.vocoder.batch import Batch
from voxserve.vocoder.codecs.base import Codec, DecodeRow, crop_rows
from voxserve.vocoder.stream import ChunkPolicy

log = get_logger(__name__)

DEFAULT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# Eager forwards before a capture: the first ones pick kernels and allocate workspaces, which a
# graph must not record.
CAPTURE_WARMUP_RUNS = 2


# (forward, static inputs on the device) -> replay, which reruns the forward on whatever the
# static inputs hold and returns its static output.
Capture = Callable[[Callable[..., torch.Tensor], tuple[torch.Tensor, ...]], Callable[[], torch.Tensor]]


def bucket_for(rows: int, buckets: Sequence[int]) -> int | None:
    """The smallest bucket holding `rows`, or None when none does."""
    return min((b for b in buckets if b >= rows), default=None)


def capture_shapes(
    policy: ChunkPolicy, max_batch_size: int, max_batch_tokens: int, buckets: Sequence[int] = DEFAULT_BUCKETS
) -> list[tuple[int, int]]:
    """(rows, window length) worth capturing: every chunk size of the ladder, with full left
    context (a stream's steady state) and with none (its first window), in every bucket up to
    the most rows the scheduler forms at that length."""
    shapes = []
    for length in sorted(policy.window_lengths):
        most = bucket_for(min(max_batch_size, max(1, max_batch_tokens // length)), buckets)
        shapes += [(bucket, length) for bucket in buckets if most is not None and bucket <= most]
    return shapes


class CudaGraphCapture:
    """Captures forwards as CUDA graphs sharing one memory pool.

    Sharing is safe because graphs replay one at a time, each static output is read before the
    next replay, and every graph's static inputs and output stay alive (so no later capture is
    handed their memory)."""

    def __init__(self) -> None:
        self.pool: Any = None

    def __call__(
        self, forward: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]
    ) -> Callable[[], torch.Tensor]:
        if self.pool is None:
            self.pool = torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream(device=inputs[0].device)
        side.wait_stream(torch.cuda.current_stream(inputs[0].device))
        with torch.cuda.stream(side):
            for _ in range(CAPTURE_WARMUP_RUNS):
                forward(*inputs)
        torch.cuda.current_stream(inputs[0].device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            output = forward(*inputs)

        def replay() -> torch.Tensor:
            graph.replay()
            return output

        return replay


@dataclass
class CapturedForward:
    inputs: tuple[torch.Tensor, ...]
    replay: Callable[[], torch.Tensor]


class DeviceDecoder:
    """Runs every forward of one codec on its device and returns samples on the host.

    `decode(rows)` gives, per row, float32 CPU samples of its own tokens, as
    `codec.decode_windows` does. Graphs apply only on CUDA (or with `capture` given, which
    tests use to stand in for CUDA), only to codecs with a static-shape forward, and only to
    shapes `warm_up` captured; everything else runs eagerly. `lanes`: on a CPU, how many forwards
    may run at once, from as many threads (1 on any other device).
    """

    def __init__(
        self,
        codec: Codec,
        device: str | torch.device,
        *,
        graphs: bool,
        buckets: Sequence[int] = DEFAULT_BUCKETS,
        capture: Capture | None = None,
        lanes: int = 1,
    ) -> None:
        self.codec = codec
        self.device = torch.device(device)
        if lanes < 1:
            raise ValueError(f"lanes must be >= 1, got {lanes}")
        self.lanes = lanes if self.device.type == "cpu" else 1
        self.buckets = tuple(sorted(set(buckets)))
        if not self.buckets or self.buckets[0] < 1:
            raise ValueError(f"buckets must be positive row counts, got {buckets}")
        self.static_forward = codec.static_forward()
        on_cuda = self.device.type == "cuda"
        self.graphs_off_reason = ""
        if not graphs:
            self.graphs_off_reason = "graphs disabled by configuration"
        elif capture is None and not on_cuda:
            self.graphs_off_reason = f"graphs need a CUDA device, not {self.device}"
        elif self.static_forward is None:
            self.graphs_off_reason = f"{codec.name}: its forward has no fixed shape to capture"
        self.graphs = not self.graphs_off_reason
        self._capture: Capture | None = capture or (CudaGraphCapture() if on_cuda else None)
        self._graphs: dict[tuple[int, int], CapturedForward] = {}
        self.captures = 0
        self.replays = 0
        self.eager_forwards = 0
        self._host: torch.Tensor | None = None
        self._copy_stream: Any = torch.cuda.Stream(device=self.device) if on_cuda else None

    @property
    def captured(self) -> list[tuple[int, int]]:
        """The (bucket, window length) keys with a graph."""
        return sorted(self._graphs)

    def warm_up(self, shapes: Iterable[tuple[int, int]], seed: int = 0) -> float:
        """Capture a graph for each (rows, window length) of `shapes` (in its bucket) not yet
        captured, largest first (smaller ones then reuse the shared pool's memory). Blocking, to
        run before serving. Returns its seconds; nothing to do when graphs are off."""
        started = time.monotonic()
        if not self.graphs:
            log.info("decode graphs off", reason=self.graphs_off_reason)
            return 0.0
        keys = set()
        for count, length in shapes:
            bucket = bucket_for(count, self.buckets)
            if bucket is not None and length > 0:
                keys.add((bucket, length))
        conditioning = self.codec.condition(self.codec.warmup_voice(seed))
        generator = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            for bucket, length in sorted(keys - set(self._graphs), reverse=True):
                batch = Batch.random(self.codec, bucket, length, 0, conditioning, seed, generator)
                self._capture_key((bucket, length), batch.rows)
        seconds = time.monotonic() - started
        log.info("decode graphs captured", graphs=len(self._graphs), seconds=round(seconds, 3))
        return seconds

    def _capture_key(self, key: tuple[int, int], rows: Sequence[DecodeRow]) -> None:
        assert self.static_forward is not None and self._capture is not None
        static = tuple(x.to(self.device).clone() for x in self.static_forward.inputs(rows))
        self._graphs[key] = CapturedForward(static, self._capture(self.static_forward.forward, static))
        self.captures += 1

    def decode(self, rows: Sequence[DecodeRow]) -> list[torch.Tensor]:
        """Per row, float32 samples of its own tokens, on the host."""
        if not rows:
            return []
        with torch.inference_mode():
            graph = self._graph_for(rows)
            if graph is None:
                self.eager_forwards += 1
                pieces = self.codec.decode_windows(rows)
            else:
                pieces = self._replay(graph, rows)
            return self._to_host(pieces)

    def _graph_for(self, rows: Sequence[DecodeRow]) -> CapturedForward | None:
        if not self.graphs:
            return None
        bucket = bucket_for(len(rows), self.buckets)
        if bucket is None:
            return None
        return self._graphs.get((bucket, rows[0].window.length))

    def _replay(self, graph: CapturedForward, rows: Sequence[DecodeRow]) -> list[torch.Tensor]:
        assert self.static_forward is not None
        n = len(rows)
        for static, value in zip(graph.inputs, self.static_forward.inputs(rows), strict=True):
            static[:n].copy_(value, non_blocking=True)
            if n < static.shape[0]:
                # Copied on the device from the row already there: no second transfer from the host.
                static[n:].copy_(static[n - 1 : n].expand_as(static[n:]))
        audio = graph.replay()
        self.replays += 1
        return crop_rows(audio, rows, self.static_forward.samples_per_token)

    def _to_host(self, pieces: list[torch.Tensor]) -> list[torch.Tensor]:
        if self._copy_stream is None:
            return [piece.to("cpu", torch.float32) for piece in pieces]
        on_device = [i for i, piece in enumerate(pieces) if piece.device.type == "cuda" and piece.numel()]
        # Pieces already on the host (or empty) need no transfer; the others are filled in below.
        out = [
            piece.to("cpu", torch.float32) if i not in on_device else piece for i, piece in enumerate(pieces)
        ]
        if not on_device:
            return out
        # One contiguous transfer for the whole batch, into page-locked memory (a transfer into
        # pageable memory is staged through a driver buffer and blocks the host).
        flat = torch.cat([pieces[i].reshape(-1).to(torch.float32) for i in on_device])
        if self._host is None or self._host.numel() < flat.numel():
            self._host = torch.empty(flat.numel(), dtype=torch.float32, pin_memory=True)
        host = self._host[: flat.numel()]
        stream = self._copy_stream
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            host.copy_(flat, non_blocking=True)
        flat.record_stream(stream)
        stream.synchronize()
        offset = 0
        for i in on_device:
            size = pieces[i].numel()
            # Out of the shared buffer into memory of the chunk's own: the next batch reuses it.
            out[i] = host[offset : offset + size].clone()
            offset += size
        return out
