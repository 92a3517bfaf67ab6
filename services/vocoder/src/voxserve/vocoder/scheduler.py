"""The one owner of all decode work on a device.

Streams register and append tokens; a single background task forms batches. Each step looks
at every stream's ready window, takes the most urgent one, fills a batch with the other ready
windows of the same length (most urgent first, up to the batch limits), runs one forward for
the whole batch in a worker thread (torch releases the GIL, so the event loop keeps taking
frames meanwhile) and hands each stream its samples. A stream that goes away while its window
is in flight is filtered out of the results.

The device runs `lanes` forwards at once (`DeviceDecoder.lanes`: on a CPU, one per group of cores
its torch threads take; one on a GPU, whose one forward already fills it). Whenever a lane is free
the next batch starts on it, whatever the lengths of the forwards in flight, so the cores stay
busy with windows of any mix of lengths and a stream that arrives waits only for the first lane
to come free.

Batch formation follows measured costs (`cost_model`): a ready window joins the most urgent
one's forward only when the predicted cost per row falls by more than BATCHING_MARGIN, or when
the ready windows served one forward each would leave a client dry; and never when the longer
forward would make a row already in the batch miss a deadline it would otherwise meet. On one CPU
core, where a batch costs about the sum of its rows, that keeps batches small; over several
cores each lane runs its own forward; on a GPU, where a batch costs about one row, batches fill.

Urgency: a stream that has sent no audio yet counts as due `first_audio_priority_seconds`
before it arrived; any other stream is due at its playback deadline (when its client, playing
in real time from the first sample, runs out). Earliest due goes first. New streams thus go
ahead of everyone still holding audio, yet a stream whose client starved for longer than that
margin goes ahead of new ones: no stream waits forever.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from voxserve.common.logging import get_logger
from voxserve.common.status import Overloaded
from voxserve.vocoder import metrics
from voxserve.vocoder.batch import Batch
from voxserve.vocoder.codecs.base import Codec, VoiceConditioning, Window
from voxserve.vocoder.cost_model import CostModel
from voxserve.vocoder.device_decode import DeviceDecoder
from voxserve.vocoder.load_meter import LoadMeter
from voxserve.vocoder.stream import ChunkPolicy, DecodeStream

log = get_logger(__name__)

# Device load (busy fraction of the last second) at which chunks start to grow, and at which
# they reach the largest size.
LOAD_LOW, LOAD_HIGH = 0.25, 0.75
# While some stream holds decodable tokens it is not yet decoding (it waits for a larger chunk),
# look again this often: its lead shrinks with time alone, and so does the chunk it waits for,
# even when no new token arrives to wake the scheduler.
RECHECK_SECONDS = 0.02
# A window joins a batch when one more row lowers the predicted cost per row by more than this.
BATCHING_MARGIN = 0.05
# A forward may take at most this many times a one-row forward of the longest window, per lane: a
# stream that arrives meanwhile waits for the first lane to come free, and on a device where a
# batch costs about the sum of its rows that wait would otherwise grow with the batch. With more
# lanes it is a shorter share of a forward (the lanes' forwards end at different times).
MAX_FORWARD_FACTOR = 1.25
# Rows per forward the warm-up measures, at each of its window lengths.
WARMUP_ROWS = (1, 2, 4, 8)


class StreamLimitReached(Overloaded):
    """The vocoder already holds its maximum number of streams: RESOURCE_EXHAUSTED with a retry
    hint, so the gateway tries another replica or comes back later."""


@dataclass(frozen=True)
class SchedulerLimits:
    max_streams: int = 128
    max_batch_size: int = 32
    max_batch_tokens: int = 8192
    first_audio_priority_seconds: float = 2.0


def pressure(load: float) -> float:
    """Device load mapped to how far chunks grow from the first size (0) to the largest (1)."""
    return min(1.0, max(0.0, (load - LOAD_LOW) / (LOAD_HIGH - LOAD_LOW)))


@dataclass(frozen=True)
class RunningForward:
    batch: Batch
    predicted_end: float


@dataclass(frozen=True)
class ReadyWork:
    due: float
    stream: DecodeStream
    window: Window


class Scheduler:
    def __init__(
        self,
        codec: Codec,
        policy: ChunkPolicy,
        limits: SchedulerLimits | None = None,
        *,
        batching: bool = True,
        host_load: Callable[[float], float] | None = None,
        decoder: DeviceDecoder | None = None,
    ):
        """`host_load(now)`: load in [0, 1] from outside the scheduler's own forwards (on a CPU
        device, the host's CPU load); the device counts as busy as the larger of the two.
        `decoder` runs the forwards (default: eagerly, on the codec's device); as many run at once
        as it has lanes, or one with `batching` off (one window per forward, one at a time)."""
        limits = limits or SchedulerLimits()
        if limits.max_batch_tokens < policy.longest_window:
            raise ValueError(
                f"max_batch_tokens ({limits.max_batch_tokens}) must hold the longest window: "
                f"{policy.longest_window} tokens (context + max chunk + lookahead)"
            )
        self.codec = codec
        self.decoder = decoder or DeviceDecoder(codec, "cpu", graphs=False)
        self.policy = policy
        self.limits = limits
        self.max_batch_size = limits.max_batch_size if batching else 1
        self.lanes = self.decoder.lanes if batching else 1
        self.load_meter = LoadMeter(lanes=self.lanes)
        self.cost = CostModel()
        self.host_load = host_load
        self._streams: dict[int, DecodeStream] = {}
        self._running: dict[asyncio.Task[None], RunningForward] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # A thread per lane and no more: each thread's allocator arena holds on to memory.
        self._executor = ThreadPoolExecutor(max_workers=self.lanes, thread_name_prefix="vocoder-decode")

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    @property
    def forwards_running(self) -> int:
        return len(self._running)

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
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def register(self, conditioning: Any, seed: int = 0) -> DecodeStream:
        if len(self._streams) >= self.limits.max_streams:
            raise StreamLimitReached(
                f"this vocoder holds its maximum of {self.limits.max_streams} streams "
                "(VOXSERVE_VOCODER_MAX_STREAMS)"
            )
        stream = DecodeStream(
            conditioning=conditioning,
            samples_per_token=self.codec.samples_per_token,
            sample_rate=self.codec.sample_rate,
            state=self.codec.open_stream(conditioning, seed),
        )
        self._streams[stream.id] = stream
        metrics.ACTIVE_STREAMS.set(len(self._streams))
        return stream

    def remove(self, stream: DecodeStream) -> None:
        if self._streams.pop(stream.id, None) is not None:
            metrics.ACTIVE_STREAMS.set(len(self._streams))

    def notify(self) -> None:
        """Something changed (tokens arrived, a stream ended): look for ready work."""
        self._wake.set()

    def _due(self, stream: DecodeStream) -> float:
        deadline = stream.deadline()
        if deadline is None:
            return stream.created - self.limits.first_audio_priority_seconds
        return deadline

    def ready_work(self, now: float) -> list[ReadyWork]:
        """Every stream's ready window, most urgent first."""
        load = self.load_meter.load(now)
        if self.host_load is not None:
            load = max(load, self.host_load(now))
        chunk_pressure = pressure(load)
        token_seconds = self.codec.samples_per_token / self.codec.sample_rate
        decode_tokens = None
        if self.cost.fitted:

            def decode_tokens(length: int) -> float:
                return self.cost.seconds(1, length) / token_seconds

        ready = []
        for stream in self._streams.values():
            lead = stream.lead_seconds(now)
            lead_tokens = None if lead is None else lead / stream.token_seconds
            backlog = stream.backlog_tokens(self.policy)
            size = self.policy.chunk_size(lead_tokens, chunk_pressure, backlog, decode_tokens)
            window = stream.next_window(self.policy, size)
            if window is None:
                continue
            if stream.ready_since is None:
                stream.ready_since = now
            ready.append(ReadyWork(self._due(stream), stream, window))
        ready.sort(key=lambda work: (work.due, work.stream.id))
        return ready

    def next_batch(self, now: float) -> Batch | None:
        """The batch of this step: the most urgent window, and ready windows of its length that
        the cost model says are worth its forward (all of them until it has measured enough)."""
        ready = self.ready_work(now)
        if not ready:
            return None
        length = ready[0].window.length
        most_rows = min(self.max_batch_size, max(1, self.limits.max_batch_tokens // max(1, length)))
        candidates = [work for work in ready[1:] if work.window.length == length][: most_rows - 1]
        taken = [ready[0]]
        for work in candidates:
            if self.cost.fitted and not self._worth_joining(taken, work, ready, now):
                break  # the next candidates cost the same and are less urgent
            taken.append(work)
        for work in taken:
            work.stream.in_flight = True
            if work.stream.ready_since is not None:
                metrics.QUEUE_WAIT_SECONDS.observe(now - work.stream.ready_since)
        return Batch.from_requests([work.window for work in taken], self._streams)

    def _worth_joining(
        self, taken: list[ReadyWork], candidate: ReadyWork, ready: list[ReadyWork], now: float
    ) -> bool:
        rows, length = len(taken), candidate.window.length
        alone = self.cost.seconds(rows, length)
        joined = self.cost.seconds(rows + 1, length)
        if joined > MAX_FORWARD_FACTOR * self.lanes * self.cost.seconds(1, self.policy.longest_window):
            return False
        for work in taken:
            deadline = work.stream.deadline()
            if deadline is not None and now + alone <= deadline < now + joined:
                return False  # the longer forward would make this client run dry
        if all(work.stream.deadline() is None for work in (*taken, candidate)):
            # First audio only: each row's wait counts. One more row delays every row of the
            # batch by its marginal cost, and spares itself a forward of its own after them.
            return (rows + 1) * (joined - alone) < self.cost.seconds(1, length)
        if self.cost.batching_pays(rows, length, BATCHING_MARGIN):
            return True
        return joined < alone + self.cost.seconds(1, length) and self._late_one_by_one(ready, now)

    def _late_one_by_one(self, ready: list[ReadyWork], now: float) -> bool:
        """Whether serving the ready windows one forward each, most urgent first, each on the
        first lane to come free, would leave some client (one that has audio) without its next
        chunk in time."""
        lanes = [max(now, forward.predicted_end) for forward in self._running.values()]
        lanes += [now] * (self.lanes - len(lanes))
        heapq.heapify(lanes)
        for work in ready:
            finish = heapq.heappop(lanes) + self.cost.seconds(1, work.window.length)
            heapq.heappush(lanes, finish)
            deadline = work.stream.deadline()
            if deadline is not None and finish > deadline:
                return True
        return False

    def warm_up(self, voice: VoiceConditioning, seed: int = 0) -> float:
        """Forwards of a few batch shapes on random tokens, before any stream arrives: they seed
        the cost model, and one row of every other window length of the ladder takes a shape's
        first-time costs (kernel choice, allocations: 9-32 ms on a CPU) off the first streams.
        Blocking: run it in a thread before `start`. Returns its seconds."""
        started = time.monotonic()
        conditioning = self.codec.condition(voice)
        generator = torch.Generator().manual_seed(seed)
        policy = self.policy
        right = policy.lookahead_tokens
        chunks = sorted({policy.first_chunk_tokens, 2 * policy.first_chunk_tokens, policy.max_chunk_tokens})
        first = True
        for chunk in chunks:
            length = chunk + right
            for rows in WARMUP_ROWS:
                if rows > self.max_batch_size or rows * length > self.limits.max_batch_tokens:
                    continue
                batch = Batch.random(self.codec, rows, chunk, right, conditioning, seed, generator)
                if first:  # the first forward pays one-time costs (allocations, kernel choice)
                    self._decode_to_host(batch)
                    first = False
                began = time.monotonic()
                self._decode_to_host(batch)
                self._record_cost(rows, length, time.monotonic() - began)
        # Untimed: a shape's first forward is no sample of what it costs after.
        for length in sorted(policy.window_lengths - {chunk + right for chunk in chunks}):
            self._decode_to_host(
                Batch.random(self.codec, 1, length - right, right, conditioning, seed, generator)
            )
        return time.monotonic() - started

    def _record_cost(self, rows: int, length: int, seconds: float) -> None:
        self.cost.record(rows, length, seconds)
        if (coefficients := self.cost.coefficients) is not None:
            metrics.COST_FIXED_SECONDS.set(coefficients.fixed)
            metrics.COST_WINDOW_TOKEN_SECONDS.set(coefficients.per_window_token)
            metrics.COST_BATCH_TOKEN_SECONDS.set(coefficients.per_batch_token)

    def _waiting_with_backlog(self) -> bool:
        return any(
            not (s.in_flight or s.finished) and s.backlog_tokens(self.policy) > 0
            for s in self._streams.values()
        )

    async def _run(self) -> None:
        while True:
            timeout = RECHECK_SECONDS if self._waiting_with_backlog() else None
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                while (
                    len(self._running) < self.lanes
                    and (batch := self.next_batch(time.monotonic())) is not None
                ):
                    self._launch(batch)
            except Exception as exc:
                # A bug here must not stall every stream on the device: fail the streams it left
                # marked in flight with no forward running them, keep serving the rest.
                log.exception("scheduler step failed")
                running = {w.stream_id for forward in self._running.values() for w in forward.batch.windows}
                self._fail([s.id for s in self._streams.values() if s.in_flight and s.id not in running], exc)

    def _launch(self, batch: Batch) -> None:
        predicted_end = time.monotonic() + self.cost.seconds(batch.size, batch.window_length)
        task = asyncio.get_running_loop().create_task(self._step(batch), name="vocoder-forward")
        self._running[task] = RunningForward(batch, predicted_end)
        metrics.FORWARDS_RUNNING.set(len(self._running))
        task.add_done_callback(self._forward_done)

    def _forward_done(self, task: asyncio.Task[None]) -> None:
        forward = self._running.pop(task, None)
        metrics.FORWARDS_RUNNING.set(len(self._running))
        if not task.cancelled() and (exc := task.exception()) is not None and forward is not None:
            # Past the forward itself (handing out samples): a bug fails this batch's streams only.
            log.error("decode step failed", exc_info=exc)
            self._fail([w.stream_id for w in forward.batch.windows], exc)
        self._wake.set()

    def _fail(self, stream_ids: list[int], exc: BaseException) -> None:
        for stream_id in stream_ids:
            stream = self._streams.get(stream_id)
            if stream is not None and stream.in_flight:
                stream.in_flight = False
                stream.finished = True
                stream.fail(exc)

    def _decode_to_host(self, batch: Batch) -> list[torch.Tensor]:
        # The copy to host memory waits for the device; doing it here keeps that off the event loop.
        return self.decoder.decode(batch.rows)

    async def _step(self, batch: Batch) -> None:
        """One forward for all rows of the batch, then hand each stream its samples."""
        started = time.monotonic()
        try:
            loop = asyncio.get_running_loop()
            batch.audio = await loop.run_in_executor(self._executor, self._decode_to_host, batch)
        except Exception as exc:  # a codec failure fails only the streams in this batch
            log.exception("decode failed", batch_size=batch.size)
            self._fail([w.stream_id for w in batch.windows], exc)
            return
        now = time.monotonic()
        self.load_meter.record(started, now)
        self._record_cost(batch.size, batch.window_length, now - started)
        metrics.BATCH_SIZE.observe(batch.size)
        metrics.BATCH_TOKENS.observe(batch.size * batch.window_length)
        metrics.FORWARD_SECONDS.observe(now - started)
        # Streams cancelled during the forward are simply filtered out of the results.
        live = batch.filter(set(self._streams))
        if live is None:
            return
        for window, samples in live.outputs():
            stream = self._streams[window.stream_id]
            lead = stream.lead_seconds(now)
            if lead is not None:
                metrics.LEAD_SECONDS.observe(lead)
            stream.deliver(window, samples, now)
            metrics.AUDIO_SECONDS.inc(samples.numel() / self.codec.sample_rate)
