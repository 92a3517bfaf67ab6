"""Batches formed from measured costs: small where a batch costs the sum of its rows, full where
it costs one row, never at the price of a deadline a row would otherwise meet; and the warm-up
that seeds the model for every codec."""

from __future__ import annotations

import time

import pytest
import torch
from prometheus_client import REGISTRY

from tests.services.vocoder.helpers import RecordingCodec
from tests.services.vocoder.test_cost_model import CPU, GPU, SHAPES
from voxserve.vocoder.codecs.base import Codec
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.cost_model import Coefficients
from voxserve.vocoder.device_decode import DeviceDecoder
from voxserve.vocoder.scheduler import Scheduler, SchedulerLimits
from voxserve.vocoder.stream import ChunkPolicy, DecodeStream

POLICY = ChunkPolicy(first_chunk_tokens=10, max_chunk_tokens=80, left_context_tokens=6, lookahead_tokens=6)
LIMITS = SchedulerLimits(max_batch_size=8, max_batch_tokens=8 * POLICY.longest_window)


def scheduler_on(codec: BiCodec, truth: Coefficients, lanes: int = 1) -> Scheduler:
    decoder = DeviceDecoder(codec, "cpu", graphs=False, lanes=lanes)
    scheduler = Scheduler(codec, POLICY, LIMITS, decoder=decoder)
    for rows, tokens in SHAPES:
        scheduler.cost.record(rows, tokens, truth.seconds(rows, tokens))
    scheduler.cost.refit()
    return scheduler


def ready(
    scheduler: Scheduler, *, decoded: int, first_audio_at: float | None, created: float
) -> DecodeStream:
    stream = scheduler.register(torch.zeros(4))
    stream.append([0] * 400)
    stream.decoded_tokens = decoded
    stream.first_audio_at = first_audio_at
    stream.created = created
    return stream


def test_where_a_batch_costs_its_rows_new_streams_go_one_by_one(tiny_bicodec: BiCodec) -> None:
    scheduler = scheduler_on(tiny_bicodec, CPU)
    now = time.monotonic()
    for i in range(5):
        ready(scheduler, decoded=0, first_audio_at=None, created=now - i)
    batch = scheduler.next_batch(now)
    assert batch is not None and batch.size == 1


def test_where_a_batch_costs_one_row_it_fills(tiny_bicodec: BiCodec) -> None:
    scheduler = scheduler_on(tiny_bicodec, GPU)
    now = time.monotonic()
    for i in range(10):
        ready(scheduler, decoded=0, first_audio_at=None, created=now - i)
    batch = scheduler.next_batch(now)
    assert batch is not None and batch.size == LIMITS.max_batch_size


@pytest.mark.parametrize(("fixed", "expected"), [(0.004, 1), (0.01, 2), (0.02, 4)])
def test_first_windows_join_while_the_rows_they_delay_wait_less_than_a_forward_of_their_own(
    tiny_bicodec: BiCodec, fixed: float, expected: int
) -> None:
    # First windows are 16 tokens (chunk 10 + lookahead 6): each row adds 6.4 ms to the forward.
    # The k-th row joins while k x 6.4 ms < one forward alone (fixed + 6.4 ms).
    scheduler = scheduler_on(
        tiny_bicodec, Coefficients(fixed=fixed, per_window_token=0.0, per_batch_token=0.0004)
    )
    now = time.monotonic()
    for i in range(6):
        ready(scheduler, decoded=0, first_audio_at=None, created=now - i)
    batch = scheduler.next_batch(now)
    assert batch is not None and batch.size == expected


def test_a_row_never_joins_at_the_price_of_a_deadline_the_batch_would_meet(tiny_bicodec: BiCodec) -> None:
    scheduler = scheduler_on(tiny_bicodec, GPU)
    now = time.monotonic()
    # 50 decoded tokens = 1 s of audio: this client runs dry just after a one-row forward would end.
    # Each stream holds 350 tokens it has not decoded: its window is the longest.
    length = POLICY.longest_window
    one, two = GPU.seconds(1, length), GPU.seconds(2, length)
    urgent = ready(scheduler, decoded=50, first_audio_at=now - 1 + (one + two) / 2, created=now - 2)
    others = [ready(scheduler, decoded=50, first_audio_at=now, created=now - 2) for _ in range(3)]
    batch = scheduler.next_batch(now)
    assert batch is not None and [w.stream_id for w in batch.windows] == [urgent.id]
    assert not any(s.in_flight for s in others)


def test_a_queue_that_one_by_one_would_starve_clients_is_batched_even_on_a_cpu(tiny_bicodec: BiCodec) -> None:
    fixed_heavy = Coefficients(fixed=0.02, per_window_token=0.0, per_batch_token=0.00004)
    scheduler = scheduler_on(tiny_bicodec, fixed_heavy)
    now = time.monotonic()
    # Eight clients each holding 40 ms of audio: one forward each (20 ms and more) cannot serve all.
    streams = [ready(scheduler, decoded=50, first_audio_at=now - 0.96, created=now - 2) for _ in range(8)]
    batch = scheduler.next_batch(now)
    assert batch is not None and batch.size > 1
    assert all(w.stream_id in {s.id for s in streams} for w in batch.windows)


@pytest.mark.parametrize(("lanes", "expected"), [(1, 1), (2, 4)])
def test_a_forward_takes_little_longer_than_one_row_of_the_longest_window_per_lane(
    tiny_bicodec: BiCodec, lanes: int, expected: int
) -> None:
    # Starved clients would take any batch that shortens the queue; yet a stream that arrives
    # meanwhile waits for the first lane to come free, so a forward stays near one row's time per
    # lane: one row (19 ms) on one lane; on two, four rows (47 ms; five would take 56).
    costly = Coefficients(fixed=0.01, per_window_token=0.0, per_batch_token=0.0001)
    scheduler = scheduler_on(tiny_bicodec, costly, lanes)
    now = time.monotonic()
    for _ in range(8):
        ready(scheduler, decoded=50, first_audio_at=now - 2, created=now - 3)
    batch = scheduler.next_batch(now)
    assert batch is not None and batch.window_length == POLICY.longest_window
    assert batch.size == expected


def test_a_queue_that_the_lanes_serve_in_time_one_by_one_is_not_batched(tiny_bicodec: BiCodec) -> None:
    # Four clients each holding 50 ms of audio and 20 tokens to decode (windows of 32 tokens); a
    # one-row forward takes 20 ms and two rows 39 ms (a CPU: batching saves little). One lane
    # serving them one by one leaves the last two dry, so rows share forwards; two lanes serve all
    # four in time, one row per forward.
    length = POLICY.window_length(20)
    per_row = Coefficients(fixed=0.001, per_window_token=0.0, per_batch_token=0.019 / length)
    sizes = {}
    for lanes in (1, 2):
        scheduler = scheduler_on(tiny_bicodec, per_row, lanes)
        now = time.monotonic()
        for _ in range(4):
            stream = ready(scheduler, decoded=50, first_audio_at=now - 0.95, created=now - 2)
            del stream.tokens[50 + 20 + POLICY.lookahead_tokens :]
        batch = scheduler.next_batch(now)
        assert batch is not None and batch.window_length == length
        sizes[lanes] = batch.size
    assert sizes[1] > 1 and sizes[2] == 1


def test_before_the_model_has_measured_enough_batches_fill_as_before(tiny_bicodec: BiCodec) -> None:
    scheduler = Scheduler(tiny_bicodec, POLICY, LIMITS)
    now = time.monotonic()
    for i in range(10):
        ready(scheduler, decoded=0, first_audio_at=None, created=now - i)
    batch = scheduler.next_batch(now)
    assert not scheduler.cost.fitted and batch is not None and batch.size == LIMITS.max_batch_size


@pytest.mark.parametrize("codec_fixture", ["tiny_bicodec", "s3gen_codec", "tiny_snac"])
def test_the_warm_up_seeds_the_cost_model_for_every_codec(
    codec_fixture: str, request: pytest.FixtureRequest
) -> None:
    codec: Codec = request.getfixturevalue(codec_fixture)
    policy = ChunkPolicy(first_chunk_tokens=2, max_chunk_tokens=8, left_context_tokens=2, lookahead_tokens=2)
    scheduler = Scheduler(codec, policy, SchedulerLimits(max_batch_size=4, max_batch_tokens=64))
    seconds = scheduler.warm_up(codec.warmup_voice(seed=1))
    assert seconds > 0 and scheduler.cost.fitted
    # Three window lengths (chunks 2, 4, 8 plus lookahead) at 1, 2 and 4 rows: 9 shapes measured.
    assert len({(r, t) for r, t, _ in scheduler.cost._samples}) == 9
    assert scheduler.cost.seconds(4, 10) > 0
    coefficients = scheduler.cost.coefficients
    assert coefficients is not None
    for term in ("fixed", "window_token", "batch_token"):
        exported = REGISTRY.get_sample_value(f"voxserve_vocoder_cost_{term}_seconds")
        field = "fixed" if term == "fixed" else f"per_{term}"
        assert exported == getattr(coefficients, field), term


def test_the_warm_up_decodes_one_row_of_every_window_length_of_the_ladder(tiny_bicodec: BiCodec) -> None:
    codec = RecordingCodec(tiny_bicodec)
    scheduler = Scheduler(codec, POLICY, LIMITS)  # type: ignore[arg-type]
    scheduler.warm_up(tiny_bicodec.warmup_voice(seed=1))
    # Chunks 10, 20, 40, 80 with lookahead 6, and with left context 6 as well.
    assert POLICY.window_lengths == {16, 26, 46, 86, 22, 32, 52, 92}
    assert {length for rows, length in codec.shapes if rows == 1} == POLICY.window_lengths


@pytest.mark.parametrize(
    ("lead", "backlog", "decode", "expected"),
    [
        (None, 0, 0.0, 10),  # no audio out yet: the first size
        (100, 0, 0.0, 40),  # 75 tokens of budget (a busy device): 40 fits, 80 does not
        (100, 0, 30.0, 40),  # 40 + 30 <= 75
        (100, 0, 40.0, 20),  # 40 + 40 > 75, 20 + 40 <= 75
        (100, 80, 40.0, 40),  # tokens here cost no waiting: windows of 40 cost 65, of 80 cost 115
        (1000, 0, 5.0, 80),  # a long lead: the largest
        (30, 0, 100.0, 10),  # nothing fits: the first size
        (0, 50, 40.0, 40),  # a starved client: of the sizes here, the least decode per token
    ],
)
def test_with_a_measured_cost_the_chunk_is_the_largest_that_lands_in_time(
    lead: float | None, backlog: int, decode: float, expected: int
) -> None:
    # decode grows with the window for the backlog case, so 80 tokens (window 92) cost more.
    def decode_tokens(length: int) -> float:
        return decode if backlog == 0 else decode * length / POLICY.window_length(20)

    size = POLICY.chunk_size(lead, 1.0, backlog, decode_tokens)
    assert size == expected


def test_an_idle_device_keeps_a_quarter_of_the_lead_for_a_measured_chunk() -> None:
    """Idle: 25 tokens of budget out of 100; busy: 75."""
    assert POLICY.chunk_size(100, 0.0, 0, lambda length: 4.0) == 20
    assert POLICY.chunk_size(100, 1.0, 0, lambda length: 4.0) == 40


def test_the_scheduler_sizes_chunks_from_its_cost_model(tiny_bicodec: BiCodec) -> None:
    """A fitted model on a fast device lets a client with 2 s of audio and its tokens here get the
    largest chunk. On a slow one (40 ms per window token) no window decodes within the idle
    device's quarter of the lead (0.5 s; the smallest takes 0.88 s): the client runs short
    whatever it gets, and of the sizes here the largest costs least per token (its context is
    spread over the most audio). With a fixed cost per forward, likewise."""
    now = time.monotonic()
    slow, fixed_heavy = Coefficients(0.0, 0.0, 0.04), Coefficients(1.0, 0.0, 0.001)
    for truth, expected in ((GPU, POLICY.max_chunk_tokens), (slow, 80), (fixed_heavy, 80)):
        scheduler = scheduler_on(tiny_bicodec, truth)
        stream = ready(scheduler, decoded=100, first_audio_at=now, created=now - 1)  # 2 s of lead
        stream.tokens = stream.tokens[:100]
        stream.append([0] * 200)
        (work,) = scheduler.ready_work(now)
        assert work.window.chunk_tokens == expected
