"""The device decode path on CPU: bucket choice, padding, the graph cache's keys (a stand-in
capture in place of CUDA's), samples with padding against without, and S3Gen's stream state."""

from __future__ import annotations

import asyncio
import copy
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import torch

from tests.services.vocoder.helpers import joined, offline, stream_through, tokens_for, voice
from voxserve.vocoder.codecs.base import Codec, CodecInputError, DecodeRow, Window
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.codecs.s3gen.codec import S3GenCodec, S3StreamState
from voxserve.vocoder.codecs.snac import SnacCodec
from voxserve.vocoder.device_decode import DeviceDecoder, bucket_for, capture_shapes
from voxserve.vocoder.receptive_field import measure_context
from voxserve.vocoder.scheduler import Scheduler, SchedulerLimits
from voxserve.vocoder.stream import ChunkPolicy


class EagerCapture:
    """Stands in for CUDA graph capture: replay reruns the forward on the static inputs, so what
    a replay returns shows what the decoder copied into them. Counts its captures."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, ...]] = []

    def __call__(
        self, forward: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]
    ) -> Callable[[], torch.Tensor]:
        self.keys.append(tuple(inputs[0].shape[:2]))
        return lambda: forward(*inputs)


def rows_for(
    codec: Codec, count: int, length: int = 24, left: int = 4, right: int = 4, seed: int = 0
) -> list[DecodeRow]:
    """`count` rows of one window length from different streams (voices, seeds and positions)."""
    generator = torch.Generator().manual_seed(seed)
    shape = (length,) if codec.codes_per_token == 1 else (length, codec.codes_per_token)
    rows = []
    for i in range(count):
        conditioning = codec.condition(codec.warmup_voice(seed + i))
        start = left + 3 * i
        window = Window(i, start, start + length - left - right, left, right, final=False)
        tokens = torch.randint(0, codec.token_vocab_size, shape, generator=generator)
        rows.append(DecodeRow(window, tokens, conditioning, codec.open_stream(conditioning, 100 + i)))
    return rows


@pytest.fixture(params=["bicodec", "snac"])
def graph_codec(request: pytest.FixtureRequest, tiny_bicodec: BiCodec, tiny_snac: SnacCodec) -> Codec:
    return tiny_bicodec if request.param == "bicodec" else tiny_snac


def test_a_batch_goes_in_the_smallest_bucket_that_holds_it() -> None:
    buckets = (1, 2, 4, 8, 16)
    assert [bucket_for(n, buckets) for n in (1, 2, 3, 4, 5, 8, 9, 16)] == [1, 2, 4, 4, 8, 8, 16, 16]
    assert bucket_for(17, buckets) is None


@pytest.mark.parametrize("name", ["bicodec", "snac", "s3gen"])
def test_forwards_on_several_lanes_at_once_match_forwards_one_after_another(
    name: str, tiny_bicodec: BiCodec, tiny_snac: SnacCodec, s3gen_codec: S3GenCodec
) -> None:
    codec: Codec = {"bicodec": tiny_bicodec, "snac": tiny_snac, "s3gen": s3gen_codec}[name]
    right = s3gen_codec.lookahead_tokens if name == "s3gen" else 4
    # Three batches of two rows each, every row its own stream (voice, seed, noise, state).
    batches = [rows_for(codec, 2, length=16, left=4, right=right, seed=7 + 10 * b) for b in range(3)]
    twins = copy.deepcopy(batches)  # S3Gen's streams carry state from chunk to chunk
    decoder = DeviceDecoder(codec, "cpu", graphs=False, lanes=3)
    assert decoder.lanes == 3
    barrier = threading.Barrier(3)

    def together(rows: list[DecodeRow]) -> list[torch.Tensor]:
        barrier.wait(timeout=30)  # all three forwards start at once
        return decoder.decode(rows)

    with ThreadPoolExecutor(3) as lanes:
        ours = list(lanes.map(together, batches))
    theirs = [DeviceDecoder(codec, "cpu", graphs=False).decode(rows) for rows in twins]
    for ours_batch, theirs_batch in zip(ours, theirs, strict=True):
        for ours_row, theirs_row in zip(ours_batch, theirs_batch, strict=True):
            torch.testing.assert_close(ours_row, theirs_row, rtol=0, atol=1e-6)
    if name == "s3gen":
        for rows, others in zip(batches, twins, strict=True):
            for row, other in zip(rows, others, strict=True):
                mine, expected = _state_values(row.state), _state_values(other.state)
                assert all(torch.allclose(mine[key], expected[key], atol=1e-6) for key in mine)


def test_lanes_are_positive_and_one_off_a_cpu(tiny_bicodec: BiCodec) -> None:
    with pytest.raises(ValueError, match="lanes must be >= 1"):
        DeviceDecoder(tiny_bicodec, "cpu", graphs=False, lanes=0)
    assert DeviceDecoder(tiny_bicodec, "meta", graphs=False, lanes=4).lanes == 1


def test_capture_shapes_cover_the_ladder_within_the_batch_limits() -> None:
    policy = ChunkPolicy(
        first_chunk_tokens=10, max_chunk_tokens=40, left_context_tokens=8, lookahead_tokens=4
    )
    shapes = capture_shapes(policy, max_batch_size=8, max_batch_tokens=256, buckets=(1, 2, 4, 8, 16))
    lengths = sorted({length for _, length in shapes})
    # Steady windows (8 + chunk + 4) and first windows (chunk + 4), for chunks 10, 20, 40.
    assert lengths == [14, 22, 24, 32, 44, 52]
    assert [b for b, length in shapes if length == 14] == [1, 2, 4, 8]
    # 256 // 52 = 4 rows at most at the longest length.
    assert [b for b, length in shapes if length == 52] == [1, 2, 4]


def test_padded_rows_are_discarded_and_samples_match_an_unpadded_forward(graph_codec: Codec) -> None:
    rows = rows_for(graph_codec, 3)
    eager = [audio.clone() for audio in graph_codec.decode_windows(rows)]
    capture = EagerCapture()
    decoder = DeviceDecoder(graph_codec, "cpu", graphs=True, buckets=(1, 2, 4, 8), capture=capture)
    decoder.warm_up([(3, 24)])
    assert capture.keys == [(4, 24)]
    out = decoder.decode(rows)
    assert (decoder.replays, decoder.eager_forwards) == (1, 0)
    assert len(out) == 3, "the padding row's samples are not returned"
    for row, ours, theirs in zip(rows, out, eager, strict=True):
        assert ours.dtype == torch.float32 and ours.device.type == "cpu"
        assert ours.shape == (row.window.chunk_tokens * graph_codec.samples_per_token,)
        # A batch of 4 and one of 3 differ only by the rounding of CPU kernels blocked by batch size.
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def test_a_full_bucket_replays_exactly_what_an_eager_forward_gives(graph_codec: Codec) -> None:
    rows = rows_for(graph_codec, 4, seed=5)
    eager = [audio.clone() for audio in graph_codec.decode_windows(rows)]
    decoder = DeviceDecoder(graph_codec, "cpu", graphs=True, buckets=(4,), capture=EagerCapture())
    decoder.warm_up([(4, 24)])
    out = decoder.decode(rows)
    assert decoder.replays == 1
    assert all(torch.equal(a, b) for a, b in zip(out, eager, strict=True))


def test_what_fills_the_padding_rows_never_changes_a_real_row(graph_codec: Codec) -> None:
    decoder = DeviceDecoder(graph_codec, "cpu", graphs=True, buckets=(8,), capture=EagerCapture())
    decoder.warm_up([(8, 24)])
    rows = rows_for(graph_codec, 2, seed=1)
    first = decoder.decode(rows)
    # Other streams' rows fill the bucket in between; the padding of the next call is copied
    # from its own last row, so nothing of them may show.
    decoder.decode(rows_for(graph_codec, 7, seed=2))
    again = decoder.decode(rows)
    eager_bucket = graph_codec.decode_windows(rows + rows_for(graph_codec, 6, seed=3))[:2]
    assert decoder.replays == 3
    for a, b, c in zip(first, again, eager_bucket, strict=True):
        assert torch.equal(a, b)
        assert torch.equal(a, c), "the samples are those of an eager forward of the whole bucket"


def test_one_capture_per_bucket_and_length_reused_and_other_shapes_run_eagerly(tiny_bicodec: BiCodec) -> None:
    capture = EagerCapture()
    decoder = DeviceDecoder(tiny_bicodec, "cpu", graphs=True, buckets=(1, 2, 4), capture=capture)
    decoder.warm_up([(1, 24), (2, 24), (3, 24), (4, 24), (2, 16), (9, 24)])
    assert decoder.captured == [(1, 24), (2, 16), (2, 24), (4, 24)], "9 rows fit no bucket"
    assert sorted(capture.keys) == [(1, 24), (2, 16), (2, 24), (4, 24)]
    assert decoder.warm_up([(4, 24), (3, 24)]) >= 0 and decoder.captures == 4, "already captured"
    decoder.decode(rows_for(tiny_bicodec, 3))
    decoder.decode(rows_for(tiny_bicodec, 4, seed=1))
    assert (decoder.replays, decoder.eager_forwards) == (2, 0)
    decoder.decode(rows_for(tiny_bicodec, 2, length=20))  # a length without a graph
    decoder.decode(rows_for(tiny_bicodec, 5))  # more rows than the largest bucket
    assert (decoder.replays, decoder.eager_forwards) == (2, 2)
    assert decoder.captures == 4


def test_graphs_are_off_on_cpu_when_disabled_and_for_s3gen(
    tiny_bicodec: BiCodec, s3gen_codec: S3GenCodec
) -> None:
    on_cpu = DeviceDecoder(tiny_bicodec, "cpu", graphs=True)
    assert not on_cpu.graphs and "CUDA" in on_cpu.graphs_off_reason
    assert on_cpu.warm_up([(4, 24)]) == 0.0 and on_cpu.captured == []
    disabled = DeviceDecoder(tiny_bicodec, "cpu", graphs=False, capture=EagerCapture())
    assert not disabled.graphs and disabled.warm_up([(4, 24)]) == 0.0
    s3 = DeviceDecoder(s3gen_codec, "cpu", graphs=True, capture=EagerCapture())
    assert not s3.graphs and "s3gen" in s3.graphs_off_reason
    rows = rows_for(tiny_bicodec, 2)
    out = on_cpu.decode(rows)
    assert on_cpu.eager_forwards == 1
    assert all(torch.equal(a, b) for a, b in zip(out, tiny_bicodec.decode_windows(rows), strict=True))


def test_samples_come_back_as_float32_on_the_host(tiny_bicodec64: BiCodec) -> None:
    out = DeviceDecoder(tiny_bicodec64, "cpu", graphs=False).decode(rows_for(tiny_bicodec64, 2))
    assert all(a.dtype == torch.float32 and a.device.type == "cpu" for a in out)
    assert DeviceDecoder(tiny_bicodec64, "cpu", graphs=False).decode([]) == []


def test_out_of_range_tokens_are_refused_before_a_replay(tiny_bicodec: BiCodec) -> None:
    decoder = DeviceDecoder(tiny_bicodec, "cpu", graphs=True, buckets=(2,), capture=EagerCapture())
    decoder.warm_up([(2, 24)])
    rows = rows_for(tiny_bicodec, 2)
    rows[1].tokens[3] = tiny_bicodec.token_vocab_size
    with pytest.raises(CodecInputError, match="tokens must lie in"):
        decoder.decode(rows)
    assert decoder.replays == 0


def _state_values(state: S3StreamState) -> dict[str, Any]:
    hift = state.hift
    return {
        "prompt_noise": state.prompt_noise,
        "phase": hift.phase,
        "mel_tail": hift.mel_tail,
        "source_tail": hift.source_tail,
        "wave_tail": hift.wave_tail,
    }


def test_s3gen_streams_advance_exactly_as_without_the_decoder(s3gen_codec: S3GenCodec) -> None:
    # Stateful: S3Gen runs unpadded and eagerly, so each real stream's state moves only by its own row.
    rows = rows_for(s3gen_codec, 3, length=16, left=4, right=s3gen_codec.lookahead_tokens)
    twin = copy.deepcopy(rows)
    decoder = DeviceDecoder(s3gen_codec, "cpu", graphs=True, buckets=(4,), capture=EagerCapture())
    decoder.warm_up([(3, 16)])
    assert decoder.captured == []
    ours = decoder.decode(rows)
    theirs = s3gen_codec.decode_windows(twin)
    assert decoder.eager_forwards == 1 and decoder.replays == 0
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
    for row, other in zip(rows, twin, strict=True):
        mine, expected = _state_values(row.state), _state_values(other.state)
        assert all(torch.equal(mine[key], expected[key]) for key in mine)
        assert mine["wave_tail"].numel() > 0, "the chunk moved the stream's state on"


async def test_the_scheduler_decodes_through_the_captured_graphs(tiny_bicodec: BiCodec) -> None:
    # The service's wiring: shapes from the chunk ladder captured before serving, then every
    # stream's windows replayed in buckets, samples as close to offline as without graphs.
    tolerance = 5e-5
    context = measure_context(tiny_bicodec, tolerance).context_tokens
    policy = ChunkPolicy(
        first_chunk_tokens=10, max_chunk_tokens=40, left_context_tokens=context, lookahead_tokens=context
    )
    limits = SchedulerLimits(max_batch_size=4, max_batch_tokens=1024)
    decoder = DeviceDecoder(tiny_bicodec, "cpu", graphs=True, buckets=(1, 2, 4), capture=EagerCapture())
    decoder.warm_up(capture_shapes(policy, limits.max_batch_size, limits.max_batch_tokens, decoder.buckets))
    scheduler = Scheduler(tiny_bicodec, policy, limits, decoder=decoder)
    scheduler.start()
    try:
        streams = [(voice(i), tokens_for(i, 120)) for i in range(3)]
        rng = random.Random(0)
        results = await asyncio.gather(
            *(stream_through(scheduler, v, tokens, frame=5, rng=rng) for v, tokens in streams)
        )
    finally:
        await scheduler.stop()
    assert decoder.replays > 0
    for (v, tokens), chunks in zip(streams, results, strict=True):
        audio = joined(chunks)
        assert audio.numel() == len(tokens) * tiny_bicodec.samples_per_token
        assert float((audio - offline(tiny_bicodec, v, tokens)).abs().max()) <= tolerance
