"""The scheduler: exact sample counts, streaming equals offline, batching is invisible, priority,
adaptive chunks, limits, cancellation."""

from __future__ import annotations

import asyncio
import gc
import itertools
import random
import time
import weakref

import pytest
import torch
from prometheus_client import REGISTRY

from tests.services.vocoder.helpers import RecordingCodec, joined, offline, stream_through, tokens_for, voice
from tests.services.vocoder.test_cost_model import GPU
from voxserve.vocoder.batch import Batch
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.cost_model import Coefficients, CostModel
from voxserve.vocoder.device_decode import DeviceDecoder
from voxserve.vocoder.receptive_field import measure_context
from voxserve.vocoder.scheduler import Scheduler, SchedulerLimits, StreamLimitReached, pressure
from voxserve.vocoder.stream import Chunk, ChunkPolicy, DecodeStream

TOLERANCE = 1e-4
# The service's default: context measured so any one chunking is within half the tolerance of
# offline, hence any two chunkings (alone or batched) within the tolerance of each other.
CONTEXT_TOLERANCE = 5e-5


@pytest.fixture(scope="module")
def policy(tiny_bicodec: BiCodec) -> ChunkPolicy:
    context = measure_context(tiny_bicodec, CONTEXT_TOLERANCE).context_tokens
    return ChunkPolicy(
        first_chunk_tokens=10, max_chunk_tokens=80, left_context_tokens=context, lookahead_tokens=context
    )


@pytest.mark.parametrize("n_tokens", [0, 1, 9, 10, 34, 97, 250])
async def test_every_token_yields_its_samples_and_matches_offline(
    tiny_bicodec: BiCodec, policy: ChunkPolicy, n_tokens: int
) -> None:
    scheduler = Scheduler(tiny_bicodec, policy)
    scheduler.start()
    try:
        v, tokens = voice(n_tokens), tokens_for(n_tokens, n_tokens)
        chunks = await stream_through(scheduler, v, tokens, frame=3, rng=random.Random(n_tokens))
    finally:
        await scheduler.stop()
    assert chunks[-1].final and sum(c.final for c in chunks) == 1
    assert all(a.sample_offset + a.samples.numel() == b.sample_offset for a, b in itertools.pairwise(chunks))
    audio = joined(chunks)
    assert audio.numel() == 320 * n_tokens
    if n_tokens:
        assert torch.max(torch.abs(audio - offline(tiny_bicodec, v, tokens))) <= CONTEXT_TOLERANCE
    assert scheduler.active_streams == 0


async def test_first_chunk_comes_before_the_end(tiny_bicodec: BiCodec, policy: ChunkPolicy) -> None:
    scheduler = Scheduler(tiny_bicodec, policy)
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


class FixedCosts(CostModel):
    """A cost model that keeps the costs it is given, whatever the forwards take."""

    def __init__(self, coefficients: Coefficients):
        super().__init__()
        self.coefficients = coefficients

    def record(self, rows: int, tokens: int, seconds: float) -> None:
        pass


@pytest.mark.parametrize("lanes", [1, 2])
async def test_batching_is_invisible_with_31_others(
    tiny_bicodec: BiCodec, policy: ChunkPolicy, lanes: int
) -> None:
    """32 streams of different lengths and start times decoded together (on one lane, or two
    forwards at once) give the same samples as each decoded in forwards of its own (batch size 1)."""
    rng = random.Random(7)
    lengths = [rng.randrange(20, 300) for _ in range(32)]
    starts = [rng.random() * 0.3 for _ in range(32)]
    batched_codec, alone_codec = RecordingCodec(tiny_bicodec), RecordingCodec(tiny_bicodec)
    decoder = DeviceDecoder(batched_codec, "cpu", graphs=False, lanes=lanes)  # type: ignore[arg-type]
    batched = Scheduler(batched_codec, policy, decoder=decoder)  # type: ignore[arg-type]
    # A GPU's costs, held: every ready window of the batch's length joins, however long this
    # machine's forwards take, so rows do share forwards.
    batched.cost = FixedCosts(GPU)
    alone = Scheduler(alone_codec, policy, batching=False)  # type: ignore[arg-type]

    async def run_all(scheduler: Scheduler) -> list[list[Chunk]]:
        return await asyncio.gather(
            *(
                stream_through(
                    scheduler, voice(i), tokens_for(i, n), 5, random.Random(i), start_delay=starts[i]
                )
                for i, n in enumerate(lengths)
            )
        )

    batched.start()
    alone.start()
    try:
        together = await run_all(batched)
        singles = await run_all(alone)
    finally:
        await batched.stop()
        await alone.stop()
    assert max(batched_codec.batch_sizes) >= 4, "concurrent streams should share forwards"
    assert batched_codec.most_at_once == lanes
    assert set(alone_codec.batch_sizes) == {1}
    worst = 0.0
    for i, (a, b) in enumerate(zip(together, singles, strict=True)):
        x, y = joined(a), joined(b)
        assert x.numel() == y.numel() == 320 * lengths[i]
        worst = max(worst, float(torch.max(torch.abs(x - y))))
    print(f"batched vs alone: max abs diff {worst:.2e}, largest batch {max(batched_codec.batch_sizes)}")
    assert worst <= TOLERANCE


async def test_output_is_a_function_of_tokens_and_voice(tiny_bicodec: BiCodec, policy: ChunkPolicy) -> None:
    """Two schedulers (as two replicas) decode the same tokens and voice to identical samples."""
    v, tokens = voice(11), tokens_for(11, 333)
    outputs = []
    for _ in range(2):
        scheduler = Scheduler(tiny_bicodec, policy)
        scheduler.start()
        try:
            outputs.append(joined(await stream_through(scheduler, v, tokens, len(tokens), random.Random(0))))
        finally:
            await scheduler.stop()
    assert outputs[0].numel() == 320 * 333 and torch.equal(outputs[0], outputs[1])


async def test_cancelled_streams_leave_nothing_behind(tiny_bicodec: BiCodec, policy: ChunkPolicy) -> None:
    """200 streams cancelled at random points: none stays registered or referenced, and a stream
    running meanwhile gets all its samples."""
    scheduler = Scheduler(tiny_bicodec, policy, SchedulerLimits(max_streams=256))
    scheduler.start()
    rng = random.Random(3)
    refs: list[weakref.ref[DecodeStream]] = []
    conditioning = tiny_bicodec.condition(voice(4))

    async def doomed(i: int) -> None:
        stream = scheduler.register(conditioning)
        refs.append(weakref.ref(stream))
        for _ in range(rng.randrange(0, 6)):
            stream.append(tokens_for(i, rng.randrange(1, 30)))
            scheduler.notify()
            await asyncio.sleep(rng.random() * 0.01)
        scheduler.remove(stream)  # what the servicer does when its caller goes away

    try:
        survivor, *_ = await asyncio.gather(
            stream_through(scheduler, voice(6), tokens_for(6, 200), 10, random.Random(0)),
            *(doomed(i) for i in range(200)),
        )
        await asyncio.sleep(0.2)  # let a forward that was in flight finish
    finally:
        await scheduler.stop()
    assert joined(survivor).numel() == 320 * 200
    assert scheduler.active_streams == 0
    gc.collect()
    assert [r for r in refs if r() is not None] == []


async def test_a_codec_failure_fails_its_streams_not_the_scheduler(
    tiny_bicodec: BiCodec, policy: ChunkPolicy
) -> None:
    codec = RecordingCodec(tiny_bicodec, fail=True)
    scheduler = Scheduler(codec, policy)  # type: ignore[arg-type]
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


async def test_a_failure_while_forming_batches_fails_those_streams_only(
    tiny_bicodec: BiCodec, policy: ChunkPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler = Scheduler(tiny_bicodec, policy)
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


def _ready_stream(
    scheduler: Scheduler,
    *,
    decoded: int,
    first_audio_at: float | None,
    created: float,
    tokens: int = 400,
    conditioning: torch.Tensor | None = None,
) -> DecodeStream:
    stream = scheduler.register(torch.zeros(4) if conditioning is None else conditioning)
    stream.append([0] * tokens)
    stream.decoded_tokens = decoded
    stream.first_audio_at = first_audio_at
    stream.created = created
    return stream


async def test_no_audio_first_then_earliest_deadline_and_no_starvation(
    tiny_bicodec: BiCodec, policy: ChunkPolicy
) -> None:
    scheduler = Scheduler(tiny_bicodec, policy, SchedulerLimits(first_audio_priority_seconds=2.0))
    now = time.monotonic()
    # 50 tokens = 1 s of audio: the deadline is first audio + 1 s.
    later = _ready_stream(scheduler, decoded=50, first_audio_at=now - 0.5, created=now - 1)  # due in 0.5 s
    sooner = _ready_stream(scheduler, decoded=50, first_audio_at=now - 0.9, created=now - 1)  # due in 0.1 s
    new = _ready_stream(scheduler, decoded=0, first_audio_at=None, created=now)  # no audio yet
    starving = _ready_stream(
        scheduler, decoded=50, first_audio_at=now - 4, created=now - 5
    )  # ran dry 3 s ago
    order = [work.stream for work in scheduler.ready_work(now)]
    assert order == [starving, new, sooner, later]


async def test_batches_take_the_most_urgent_length_within_the_limits(
    tiny_bicodec: BiCodec, policy: ChunkPolicy
) -> None:
    limits = SchedulerLimits(max_batch_size=3, max_batch_tokens=4 * policy.longest_window)
    scheduler = Scheduler(tiny_bicodec, policy, limits)
    now = time.monotonic()
    fresh = [_ready_stream(scheduler, decoded=0, first_audio_at=None, created=now - i) for i in range(5)]
    steady = [_ready_stream(scheduler, decoded=50, first_audio_at=now, created=now) for _ in range(2)]
    batch = scheduler.next_batch(now)
    assert batch is not None
    # The five new streams share the first-chunk window length; the oldest three fit.
    assert [w.stream_id for w in batch.windows] == [s.id for s in reversed(fresh)][:3]
    assert all(s.in_flight for s in fresh[2:]) and not any(s.in_flight for s in fresh[:2] + steady)
    assert batch.size * batch.windows[0].length <= limits.max_batch_tokens
    # Rows are capped by tokens too: a window of the largest length leaves room for 4 rows only.
    tight = Scheduler(tiny_bicodec, policy, SchedulerLimits(max_batch_tokens=2 * policy.longest_window))
    for _ in range(5):
        stream = _ready_stream(tight, decoded=100, first_audio_at=now, created=now, tokens=600)
        stream.end()
    big = tight.next_batch(now)
    assert big is not None and big.windows[0].length == policy.longest_window and big.size == 2


async def test_chunks_grow_when_the_device_is_busy_with_the_lead_and_the_backlog(
    tiny_bicodec: BiCodec, policy: ChunkPolicy
) -> None:
    scheduler = Scheduler(tiny_bicodec, policy)
    now = time.monotonic()
    context = policy.lookahead_tokens
    # 1000 tokens decoded 2 s after the first audio: the client holds 18 s; 1500 more are here.
    ahead = _ready_stream(scheduler, decoded=1000, first_audio_at=now - 2, created=now - 3, tokens=2500)
    # The client holds 1.2 s (60 tokens); 15 tokens beyond the lookahead are here.
    behind = _ready_stream(
        scheduler, decoded=100, first_audio_at=now - 0.8, created=now - 3, tokens=100 + 15 + context
    )

    def chunk_sizes() -> dict[int, int]:
        return {w.stream.id: w.window.end - w.window.start for w in scheduler.ready_work(now)}

    # Idle: `behind` waits for no more than a quarter of its lead (15 tokens: a 10-token chunk);
    # `ahead` has a backlog far beyond the largest chunk.
    assert chunk_sizes() == {ahead.id: 80, behind.id: 10}
    scheduler.load_meter.record(now - 1.0, now)  # decoding all of the last second
    # Busy: `behind` may wait for three quarters of its lead (45: a 40-token chunk), not here yet.
    assert chunk_sizes() == {ahead.id: 80}
    behind.append([0] * 25)
    assert chunk_sizes() == {ahead.id: 80, behind.id: 40}
    assert pressure(0.0) == 0.0 and pressure(0.5) == pytest.approx(0.5) and pressure(1.0) == 1.0


async def test_host_load_makes_the_device_busy(tiny_bicodec: BiCodec, policy: ChunkPolicy) -> None:
    """On a CPU the vocoder shares the host: other processes' load grows its chunks too."""
    host = {"load": 0.0}
    scheduler = Scheduler(tiny_bicodec, policy, host_load=lambda now: host["load"])
    now = time.monotonic()
    # The client holds 60 tokens; 15 beyond the lookahead are here.
    stream = _ready_stream(
        scheduler,
        decoded=100,
        first_audio_at=now - 0.8,
        created=now - 3,
        tokens=115 + policy.lookahead_tokens,
    )
    [work] = scheduler.ready_work(now)
    assert work.window.end - work.window.start == 10
    stream.ready_since = None
    host["load"] = 1.0  # now the stream waits for a 40-token chunk
    assert scheduler.ready_work(now) == []


async def test_a_stream_waiting_for_a_larger_chunk_is_decoded_as_its_lead_runs_down(
    tiny_bicodec: BiCodec, policy: ChunkPolicy
) -> None:
    """No token arrives to wake the scheduler, yet the chunk a stream waits for shrinks with its
    client's lead; the scheduler looks again by itself."""
    scheduler = Scheduler(tiny_bicodec, policy)
    now = time.monotonic()
    # Idle: a chunk may take a quarter of the lead. 160.5 tokens of lead wants 40 tokens, but
    # only 30 are decodable; about 20 ms later the lead wants less than 40, and 20 are there.
    lead_tokens, decoded = 160.5, 200
    stream = _ready_stream(
        scheduler,
        decoded=decoded,
        first_audio_at=now - (decoded - lead_tokens) * 0.02,
        created=now - 5,
        tokens=decoded + 30 + policy.lookahead_tokens,
        conditioning=tiny_bicodec.condition(voice(1)),
    )
    assert scheduler.ready_work(now) == []
    stream.ready_since = None
    scheduler.start()
    try:
        chunk = await asyncio.wait_for(stream.outbox.get(), 5)
    finally:
        await scheduler.stop()
    assert isinstance(chunk, Chunk) and chunk.samples.numel() == 20 * 320


def test_limits_are_checked(tiny_bicodec: BiCodec, policy: ChunkPolicy) -> None:
    with pytest.raises(ValueError, match="max_batch_tokens"):
        Scheduler(tiny_bicodec, policy, SchedulerLimits(max_batch_tokens=policy.longest_window - 1))
    scheduler = Scheduler(tiny_bicodec, policy, SchedulerLimits(max_streams=2))
    first, _ = scheduler.register(torch.zeros(4)), scheduler.register(torch.zeros(4))
    with pytest.raises(StreamLimitReached, match="maximum of 2 streams"):
        scheduler.register(torch.zeros(4))
    scheduler.remove(first)
    scheduler.register(torch.zeros(4))


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_metrics_record_queue_wait_lead_and_audio(tiny_bicodec: BiCodec, policy: ChunkPolicy) -> None:
    before = {
        name: _sample(name)
        for name in (
            "voxserve_vocoder_queue_wait_seconds_count",
            "voxserve_vocoder_lead_seconds_count",
            "voxserve_vocoder_audio_seconds_total",
            "voxserve_vocoder_batch_tokens_count",
        )
    }
    scheduler = Scheduler(tiny_bicodec, policy)
    scheduler.start()
    try:
        chunks = await stream_through(scheduler, voice(12), tokens_for(12, 120), 5, random.Random(5))
    finally:
        await scheduler.stop()
    forwards = len(chunks)
    assert (
        _sample("voxserve_vocoder_queue_wait_seconds_count")
        - before["voxserve_vocoder_queue_wait_seconds_count"]
        == forwards
    )
    # Every chunk after the first has a lead: the first chunk starts the client's clock.
    assert _sample("voxserve_vocoder_lead_seconds_count") - before["voxserve_vocoder_lead_seconds_count"] == (
        forwards - 1
    )
    assert _sample("voxserve_vocoder_audio_seconds_total") - before[
        "voxserve_vocoder_audio_seconds_total"
    ] == pytest.approx(120 * 320 / 16000)
