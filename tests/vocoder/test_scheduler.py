"""The scheduler: exact sample counts, streaming equals offline, batching is invisible."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
import torch

from voxserve.vocoder.batch import Batch
from voxserve.vocoder.codecs.base import VoiceConditioning
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.receptive_field import measure_context
from voxserve.vocoder.scheduler import Scheduler
from voxserve.vocoder.stream import Chunk, ChunkPolicy, DecodeStream, Window

TOLERANCE = 1e-4


class RecordingCodec:
    """Wraps a codec and records each forward's batch size."""

    def __init__(self, codec: BiCodec, fail: bool = False):
        self.inner = codec
        self.batch_sizes: list[int] = []
        self.fail = fail
        for name in (
            "name",
            "sample_rate",
            "samples_per_token",
            "token_vocab_size",
            "receptive_field_tokens",
        ):
            setattr(self, name, getattr(codec, name))

    def condition(self, voice: VoiceConditioning) -> torch.Tensor:
        return self.inner.condition(voice)

    def decode(self, tokens: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(tokens.shape[0])
        if self.fail:
            raise RuntimeError("device lost")
        return self.inner.decode(tokens, conditioning)


@pytest.fixture(scope="module")
def policy(tiny_bicodec: BiCodec) -> ChunkPolicy:
    context = measure_context(tiny_bicodec, TOLERANCE).context_tokens
    return ChunkPolicy(
        first_chunk_tokens=10, chunk_tokens=25, left_context_tokens=context, lookahead_tokens=context
    )


def voice(seed: int) -> VoiceConditioning:
    rng = random.Random(seed)
    return VoiceConditioning(global_ids=tuple(rng.randrange(4096) for _ in range(32)))


def tokens_for(seed: int, n: int) -> list[int]:
    rng = random.Random(1000 + seed)
    return [rng.randrange(8192) for _ in range(n)]


def offline(codec: BiCodec, v: VoiceConditioning, tokens: list[int]) -> torch.Tensor:
    if not tokens:
        return torch.zeros(0)
    return codec.decode(torch.tensor([tokens]), codec.condition(v)[None])[0]


async def stream_through(
    scheduler: Scheduler, v: VoiceConditioning, tokens: list[int], frame: int, rng: random.Random
) -> list[Chunk]:
    """Feed tokens in frames with random pauses (as a generator would), then End; collect chunks."""
    stream = scheduler.register(scheduler.codec.condition(v))
    chunks: list[Chunk] = []

    async def collect() -> None:
        while True:
            item = await stream.outbox.get()
            assert isinstance(item, Chunk), item
            chunks.append(item)
            if item.final:
                return

    collector = asyncio.create_task(collect())
    for i in range(0, len(tokens), frame):
        stream.append(tokens[i : i + frame])
        scheduler.notify()
        await asyncio.sleep(rng.random() * 0.004)
    stream.end()
    scheduler.notify()
    await asyncio.wait_for(collector, 60)
    scheduler.remove(stream)
    return chunks


def joined(chunks: list[Chunk]) -> torch.Tensor:
    return torch.cat([c.samples for c in chunks]) if chunks else torch.zeros(0)


@pytest.mark.parametrize("n_tokens", [0, 1, 9, 10, 34, 97, 250])
async def test_every_token_yields_its_samples_and_matches_offline(
    tiny_bicodec: BiCodec, policy: ChunkPolicy, n_tokens: int
) -> None:
    scheduler = Scheduler(tiny_bicodec, policy, max_batch_size=8)
    scheduler.start()
    try:
        v, tokens = voice(n_tokens), tokens_for(n_tokens, n_tokens)
        chunks = await stream_through(scheduler, v, tokens, frame=3, rng=random.Random(n_tokens))
    finally:
        await scheduler.stop()
    assert chunks[-1].final and sum(c.final for c in chunks) == 1
    offsets = [c.sample_offset for c in chunks]
    assert offsets == sorted(offsets)
    assert all(a.sample_offset + a.samples.numel() == b.sample_offset for a, b in itertools.pairwise(chunks))
    audio = joined(chunks)
    assert audio.numel() == 320 * n_tokens
    if n_tokens:
        assert torch.max(torch.abs(audio - offline(tiny_bicodec, v, tokens))) <= TOLERANCE
    assert scheduler.active_streams == 0


async def test_first_chunk_comes_before_the_end(tiny_bicodec: BiCodec, policy: ChunkPolicy) -> None:
    scheduler = Scheduler(tiny_bicodec, policy, max_batch_size=8)
    scheduler.start()
    try:
        stream = scheduler.register(tiny_bicodec.condition(voice(1)))
        stream.append(tokens_for(1, policy.first_chunk_tokens + policy.lookahead_tokens))
        scheduler.notify()
        chunk = await asyncio.wait_for(stream.outbox.get(), 30)
        assert isinstance(chunk, Chunk) and not chunk.final
        assert chunk.sample_offset == 0 and chunk.samples.numel() == 320 * policy.first_chunk_tokens
        scheduler.remove(stream)
    finally:
        await scheduler.stop()


async def test_batching_is_invisible(tiny_bicodec: BiCodec, policy: ChunkPolicy) -> None:
    """Streams decoded together give the same samples as each decoded alone (batch size 1)."""
    lengths = [60, 60, 85, 120, 35, 60]
    batched_codec, alone_codec = RecordingCodec(tiny_bicodec), RecordingCodec(tiny_bicodec)
    batched = Scheduler(batched_codec, policy, max_batch_size=16)  # type: ignore[arg-type]
    alone = Scheduler(alone_codec, policy, max_batch_size=16, batching=False)  # type: ignore[arg-type]
    batched.start()
    alone.start()
    try:
        together = await asyncio.gather(
            *(
                stream_through(batched, voice(i), tokens_for(i, n), 5, random.Random(i))
                for i, n in enumerate(lengths)
            )
        )
        singles = [
            await stream_through(alone, voice(i), tokens_for(i, n), 5, random.Random(i))
            for i, n in enumerate(lengths)
        ]
    finally:
        await batched.stop()
        await alone.stop()
    assert max(batched_codec.batch_sizes) > 1, "concurrent streams should share forwards"
    assert set(alone_codec.batch_sizes) == {1}
    for i, (a, b) in enumerate(zip(together, singles, strict=True)):
        x, y = joined(a), joined(b)
        assert x.numel() == y.numel() == 320 * lengths[i]
        assert torch.max(torch.abs(x - y)) <= 1e-4


async def test_a_cancelled_stream_is_filtered_out_and_others_continue(
    tiny_bicodec: BiCodec, policy: ChunkPolicy
) -> None:
    scheduler = Scheduler(tiny_bicodec, policy, max_batch_size=8)
    scheduler.start()
    try:
        doomed = scheduler.register(tiny_bicodec.condition(voice(5)))
        doomed.append(tokens_for(5, 80))
        scheduler.notify()
        scheduler.remove(doomed)  # the caller went away with work pending
        chunks = await stream_through(scheduler, voice(6), tokens_for(6, 50), 10, random.Random(0))
    finally:
        await scheduler.stop()
    assert joined(chunks).numel() == 320 * 50
    assert scheduler.active_streams == 0


async def test_a_codec_failure_fails_its_streams_not_the_scheduler(
    tiny_bicodec: BiCodec, policy: ChunkPolicy
) -> None:
    codec = RecordingCodec(tiny_bicodec, fail=True)
    scheduler = Scheduler(codec, policy, max_batch_size=8)  # type: ignore[arg-type]
    scheduler.start()
    try:
        stream = scheduler.register(tiny_bicodec.condition(voice(2)))
        stream.append(tokens_for(2, 5))
        stream.end()
        scheduler.notify()
        item = await asyncio.wait_for(stream.outbox.get(), 30)
        assert isinstance(item, RuntimeError)
        codec.fail = False  # the device recovers: the scheduler still serves new streams
        scheduler.remove(stream)
        chunks = await stream_through(scheduler, voice(3), tokens_for(3, 12), 4, random.Random(1))
        assert joined(chunks).numel() == 320 * 12
    finally:
        await scheduler.stop()


def _stream(n: int) -> DecodeStream:
    stream = DecodeStream(conditioning=torch.full((4,), float(n)), samples_per_token=320)
    stream.append(list(range(n, n + 40)))
    return stream


def test_batch_from_requests_filter_and_concatenate() -> None:
    streams = {s.id: s for s in (_stream(1), _stream(2), _stream(3))}
    ids = list(streams)
    windows = [Window(i, 10, 20, 5, 5, final=False) for i in ids]
    batch = Batch.from_requests(windows, streams)
    assert batch.tokens.shape == (3, 20)
    assert batch.tokens[1].tolist() == streams[ids[1]].tokens[5:25]
    kept = batch.filter({ids[0], ids[2]})
    assert kept is not None and [w.stream_id for w in kept.windows] == [ids[0], ids[2]]
    assert torch.equal(kept.conditioning[:, 0], torch.tensor([1.0, 3.0]))
    assert batch.filter(set()) is None
    both = Batch.concatenate([kept, Batch.from_requests(windows[1:2], streams)])
    assert [w.stream_id for w in both.windows] == [ids[0], ids[2], ids[1]]
    with pytest.raises(ValueError, match="equal length"):
        Batch.from_requests([windows[0], Window(ids[1], 10, 20, 5, 0, final=True)], streams)


def test_split_crops_context_from_each_row() -> None:
    streams = {s.id: s for s in (_stream(1), _stream(2))}
    a, b = list(streams)
    batch = Batch.from_requests([Window(a, 0, 3, 0, 2, False), Window(b, 6, 8, 2, 1, False)], streams)
    audio = torch.arange(2 * 5 * 320, dtype=torch.float32).reshape(2, 5 * 320)
    first, second = batch.split(audio, 320)
    assert torch.equal(first, audio[0, : 3 * 320])
    assert torch.equal(second, audio[1, 2 * 320 : 4 * 320])


def test_window_policy() -> None:
    policy = ChunkPolicy(first_chunk_tokens=10, chunk_tokens=25, left_context_tokens=8, lookahead_tokens=6)
    stream = DecodeStream(conditioning=torch.zeros(1), samples_per_token=320)
    stream.append([0] * 15)
    assert stream.next_window(policy) is None  # 10 + 6 lookahead not there yet
    stream.append([0])
    first = stream.next_window(policy)
    assert first == Window(stream.id, 0, 10, 0, 6, final=False)
    stream.in_flight = True
    assert stream.next_window(policy) is None  # one window in flight per stream
    stream.deliver(first, torch.zeros(3200))
    stream.append([0] * 30)
    second = stream.next_window(policy)  # no longer than the audio already sent
    assert second == Window(stream.id, 10, 20, 8, 6, final=False)
    stream.deliver(second, torch.zeros(3200))
    assert stream.next_window(policy) == Window(stream.id, 20, 40, 8, 6, final=False)  # doubles
    stream.end()
    assert stream.next_window(policy) == Window(stream.id, 20, 46, 8, 0, final=True)


def test_chunks_grow_to_the_configured_size() -> None:
    policy = ChunkPolicy(first_chunk_tokens=10, chunk_tokens=25, left_context_tokens=8, lookahead_tokens=6)
    sizes, decoded = [], 0
    while decoded < 120:
        sizes.append(policy.chunk_size(decoded))
        decoded += sizes[-1]
    assert sizes == [10, 10, 20, 25, 25, 25, 25]


async def test_a_failure_while_forming_batches_fails_those_streams_only(
    tiny_bicodec: BiCodec, policy: ChunkPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = Scheduler(tiny_bicodec, policy, max_batch_size=8)
    scheduler.start()
    try:
        broken = scheduler.register(tiny_bicodec.condition(voice(8)))
        with monkeypatch.context() as patch:
            patch.setattr(
                Batch, "from_requests", classmethod(lambda cls, *a: (_ for _ in ()).throw(KeyError("bug")))
            )
            broken.append(tokens_for(8, 3))
            broken.end()
            scheduler.notify()
            item = await asyncio.wait_for(broken.outbox.get(), 30)
        assert isinstance(item, KeyError)
        scheduler.remove(broken)
        chunks = await stream_through(scheduler, voice(9), tokens_for(9, 30), 6, random.Random(2))
        assert joined(chunks).numel() == 320 * 30
    finally:
        await scheduler.stop()
