"""The one owner of all decode work on a device.

Streams register and append tokens; a single background task loops: it gathers the ready
window of every stream, groups equal-length windows into batches (streams with no audio out yet
first, then the oldest), runs one forward per batch in a worker thread (torch releases the GIL,
so the event loop keeps serving frames meanwhile) and hands each stream its samples. A stream
that goes away while its window is in flight is filtered out of the results.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import torch

from voxserve.common.logging import get_logger
from voxserve.vocoder import metrics
from voxserve.vocoder.batch import Batch
from voxserve.vocoder.codecs.base import Codec
from voxserve.vocoder.stream import ChunkPolicy, DecodeStream, Window

log = get_logger(__name__)


class Scheduler:
    def __init__(self, codec: Codec, policy: ChunkPolicy, *, max_batch_size: int, batching: bool = True):
        self.codec = codec
        self.policy = policy
        self.max_batch_size = max_batch_size if batching else 1
        self._streams: dict[int, DecodeStream] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="vocoder-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def register(self, conditioning: torch.Tensor) -> DecodeStream:
        stream = DecodeStream(conditioning=conditioning, samples_per_token=self.codec.samples_per_token)
        self._streams[stream.id] = stream
        metrics.ACTIVE_STREAMS.set(len(self._streams))
        return stream

    def remove(self, stream: DecodeStream) -> None:
        if self._streams.pop(stream.id, None) is not None:
            metrics.ACTIVE_STREAMS.set(len(self._streams))

    def notify(self) -> None:
        """Something changed (tokens arrived, a stream ended): look for ready work."""
        self._wake.set()

    def _ready_batches(self) -> list[Batch]:
        ready: list[tuple[DecodeStream, Window]] = []
        for stream in self._streams.values():
            window = stream.next_window(self.policy)
            if window is not None:
                ready.append((stream, window))
        # First audio matters most: streams that have sent nothing go first, then the oldest.
        ready.sort(key=lambda sw: (sw[0].first_audio_at is not None, sw[0].created))
        groups: dict[int, list[Window]] = defaultdict(list)
        for _, window in ready:
            groups[window.length].append(window)
        batches = []
        for windows in groups.values():
            for i in range(0, len(windows), self.max_batch_size):
                part = windows[i : i + self.max_batch_size]
                for w in part:
                    self._streams[w.stream_id].in_flight = True
                batches.append(Batch.from_requests(part, self._streams))
        return batches

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                batches = self._ready_batches()
                for batch in batches:
                    await self._step(batch)
            except Exception as exc:
                # A bug here must not stall every stream on the device: fail the streams that had
                # work in flight, keep serving the rest.
                log.exception("scheduler step failed")
                for stream in self._streams.values():
                    if stream.in_flight:
                        stream.in_flight = False
                        stream.finished = True
                        stream.fail(exc)
                continue
            if batches:
                # Tokens may have arrived while we decoded; look again before sleeping.
                self._wake.set()

    def _decode_to_host(self, batch: Batch) -> torch.Tensor:
        # The copy to host memory waits for the device; doing it here keeps that off the event loop.
        return self.codec.decode(batch.tokens, batch.conditioning).to("cpu", torch.float32)

    async def _step(self, batch: Batch) -> None:
        """One forward for all rows of the batch, then hand each stream its samples."""
        # Earlier batches of this round ran while callers may have left: drop their rows now.
        live = batch.filter(set(self._streams))
        if live is None:
            return
        started = time.perf_counter()
        try:
            audio = await asyncio.to_thread(self._decode_to_host, live)
        except Exception as exc:  # a codec failure fails only the streams in this batch
            log.exception("decode failed", batch_size=live.size)
            for w in live.windows:
                stream = self._streams.get(w.stream_id)
                if stream is not None:
                    stream.fail(exc)
            return
        metrics.BATCH_SIZE.observe(live.size)
        metrics.FORWARD_SECONDS.observe(time.perf_counter() - started)
        for window, samples in zip(
            live.windows, live.split(audio, self.codec.samples_per_token), strict=True
        ):
            stream = self._streams.get(window.stream_id)
            if stream is None:  # cancelled during the forward
                continue
            stream.deliver(window, samples)
            metrics.AUDIO_SECONDS.inc(samples.numel() / self.codec.sample_rate)
