"""The scheduler on a device with several lanes: forwards of any lengths run at once, one failing
forward fails only its own streams, stop leaves none running, and batch size 1 keeps one lane."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest
import torch

from tests.services.vocoder.helpers import RecordingCodec, joined, tokens_for, voice
from voxserve.vocoder.codecs.base import DecodeRow
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.device_decode import DeviceDecoder
from voxserve.vocoder.scheduler import Scheduler
from voxserve.vocoder.stream import Chunk, ChunkPolicy, DecodeStream

POLICY = ChunkPolicy(first_chunk_tokens=10, max_chunk_tokens=40, left_context_tokens=4, lookahead_tokens=4)
# Long enough that forwards started together overlap on any machine.
FORWARD_SECONDS = 0.2


class SlowCodec(RecordingCodec):
    """Each forward takes at least FORWARD_SECONDS; fails the forwards of windows of
    `failing_length` tokens."""

    def __init__(self, codec: BiCodec, failing_length: int = 0):
        super().__init__(codec)
        self.failing_length = failing_length

    def forward(self, rows: Sequence[DecodeRow]) -> list[torch.Tensor]:
        time.sleep(FORWARD_SECONDS)
        if rows[0].window.length == self.failing_length:
            raise RuntimeError("device lost")
        return super().forward(rows)


def scheduler_with(codec: SlowCodec, lanes: int, *, batching: bool = True) -> Scheduler:
    decoder = DeviceDecoder(codec, "cpu", graphs=False, lanes=lanes)  # type: ignore[arg-type]
    return Scheduler(codec, POLICY, batching=batching, decoder=decoder)  # type: ignore[arg-type]


def ended_stream(scheduler: Scheduler, codec: BiCodec, seed: int, count: int) -> DecodeStream:
    """A stream whose `count` tokens have all arrived: one final window of `count` tokens."""
    stream = scheduler.register(codec.condition(voice(seed)))
    stream.append(tokens_for(seed, count))
    stream.end()
    return stream


async def drain(stream: DecodeStream) -> list[Chunk] | BaseException:
    chunks = []
    while True:
        item = await asyncio.wait_for(stream.outbox.get(), 30)
        if isinstance(item, BaseException):
            return item
        chunks.append(item)
        if item.final:
            return chunks


@pytest.mark.parametrize(("lanes", "expected"), [(1, 1), (2, 2), (3, 3)])
async def test_forwards_of_different_lengths_run_at_once_on_the_lanes(
    tiny_bicodec: BiCodec, lanes: int, expected: int
) -> None:
    codec = SlowCodec(tiny_bicodec)
    scheduler = scheduler_with(codec, lanes)
    # Final windows of 5, 6 and 7 tokens: no two can share a forward.
    streams = [ended_stream(scheduler, tiny_bicodec, seed, 5 + seed) for seed in range(3)]
    scheduler.start()
    try:
        scheduler.notify()
        outputs = await asyncio.gather(*(drain(s) for s in streams))
    finally:
        await scheduler.stop()
    assert codec.most_at_once == expected
    for seed, chunks in enumerate(outputs):
        assert isinstance(chunks, list) and joined(chunks).numel() == 320 * (5 + seed)


async def test_a_failing_forward_fails_its_streams_while_the_other_lane_serves(tiny_bicodec: BiCodec) -> None:
    codec = SlowCodec(tiny_bicodec, failing_length=5)
    scheduler = scheduler_with(codec, 2)
    doomed, fine = ended_stream(scheduler, tiny_bicodec, 0, 5), ended_stream(scheduler, tiny_bicodec, 1, 6)
    scheduler.start()
    try:
        scheduler.notify()
        lost, served = await asyncio.gather(drain(doomed), drain(fine))
    finally:
        await scheduler.stop()
    assert isinstance(lost, RuntimeError) and codec.most_at_once == 2
    assert isinstance(served, list) and joined(served).numel() == 320 * 6


async def test_stop_leaves_no_forward_running(tiny_bicodec: BiCodec) -> None:
    codec = SlowCodec(tiny_bicodec)
    scheduler = scheduler_with(codec, 2)
    for seed in range(2):
        ended_stream(scheduler, tiny_bicodec, seed, 5 + seed)
    scheduler.start()
    scheduler.notify()
    await asyncio.sleep(FORWARD_SECONDS / 2)
    assert scheduler.forwards_running == 2
    await scheduler.stop()
    assert scheduler.forwards_running == 0


def test_batch_size_one_decodes_one_window_at_a_time(tiny_bicodec: BiCodec) -> None:
    codec = SlowCodec(tiny_bicodec)
    assert scheduler_with(codec, 4).lanes == 4
    assert scheduler_with(codec, 4, batching=False).lanes == 1
