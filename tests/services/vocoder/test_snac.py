"""SNAC through the vocoder: Orpheus frames to the right codebooks, noise that depends on the
frame and seed only, every frame's 2048 samples streamed through the scheduler (the first frame
and the last two included), and a streamed decode that matches the offline one."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
import torch

from tests.services.vocoder.helpers import RecordingCodec, refused, serving, stream_through
from tests.services.vocoder.test_servicer import END, decode_chunks, frame
from voxserve.v1 import vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder.codecs.base import CodecInputError, VoiceConditioning
from voxserve.vocoder.codecs.snac import SnacCodec
from voxserve.vocoder.scheduler import Scheduler
from voxserve.vocoder.stream import ChunkPolicy

SEED = 11
START = vocoder_pb2.DecodeRequest(start=vocoder_pb2.DecodeStart(codec="snac", seed=SEED))


@pytest.fixture
def codec(tiny_snac: SnacCodec) -> SnacCodec:
    return tiny_snac


def random_frames(count: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 4096, (count, 7), generator=torch.Generator().manual_seed(seed))


def test_a_pack_in_snacs_layout_loads_with_the_real_framing(codec: SnacCodec) -> None:
    assert (codec.sample_rate, codec.samples_per_token, codec.codes_per_token) == (24000, 2048, 7)
    assert codec.token_vocab_size == 4096
    # The decoder's reach is about 4755 samples (2.3 frames) on each side.
    assert codec.receptive_field_tokens == 3


def test_each_code_of_a_frame_goes_to_its_codebook(codec: SnacCodec) -> None:
    frames = torch.tensor([[[10, 11, 12, 13, 14, 15, 16], [20, 21, 22, 23, 24, 25, 26]]])
    books = codec.codes(frames)
    assert books[0].tolist() == [[10, 20]]
    assert books[1].tolist() == [[11, 14, 21, 24]]
    assert books[2].tolist() == [[12, 13, 15, 16, 22, 23, 25, 26]]


def test_noise_depends_only_on_seed_and_frame(codec: SnacCodec) -> None:
    frames = random_frames(12).unsqueeze(0)
    first = codec.decode(frames, [SEED], [0])
    assert first.shape == (1, 12 * 2048)
    assert torch.equal(first, codec.decode(frames, [SEED], [0]))
    assert not torch.equal(first, codec.decode(frames, [SEED + 1], [0]))
    assert not torch.equal(first, codec.decode(frames)), "the noise blocks add noise"
    # The same frames placed later in a stream draw other noise: position, not call, decides.
    assert not torch.equal(first, codec.decode(frames, [SEED], [5]))


@pytest.fixture
async def address(codec: SnacCodec) -> AsyncIterator[str]:
    context = codec.receptive_field_tokens
    async with serving(codec, ChunkPolicy(2, 8, context, context), max_stream_tokens=500) as (address, _):
        yield address


@pytest.mark.parametrize("count", [1, 2, 3, 29])
async def test_every_frame_streams_and_matches_the_offline_decode(
    codec: SnacCodec, address: str, count: int
) -> None:
    frames = random_frames(count, seed=count)
    codes = frames.flatten().tolist()
    messages = [START, *(frame(codes[i : i + 14]) for i in range(0, len(codes), 14)), END]
    async with grpc.aio.insecure_channel(address) as channel:
        chunks = await decode_chunks(vocoder_pb2_grpc.VocoderStub(channel), messages)
    streamed = np.concatenate([np.frombuffer(c.pcm_f32, np.float32) for c in chunks])
    assert streamed.size == 2048 * count, "the first frame and the last two are there"
    offline = codec.decode(frames.unsqueeze(0), [SEED], [0])[0].numpy()
    assert np.abs(streamed - offline).max() <= 1e-5


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (list(range(10)), "frame.token_ids holds 10 codes; snac takes whole frames of 7"),
        ([0, 1, 2, 3, 4, 5, 4096], "frame.token_ids[6]=4096 is out of range [0, 4096)"),
    ],
)
async def test_partial_frames_and_codes_past_the_codebook_are_refused(
    address: str, ids: list[int], message: str
) -> None:
    error = await asyncio.to_thread(refused, address, [START, frame(ids), END])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (error.details() or "")


def test_a_snac_stream_takes_no_voice(codec: SnacCodec) -> None:
    with pytest.raises(CodecInputError, match="the snac codec takes no voice"):
        codec.condition(VoiceConditioning(global_ids=(1, 2)))


def test_one_frame_of_context_is_too_little(codec: SnacCodec) -> None:
    """The reference streamer decodes with one frame of left context; the measured reach is 3."""
    frames = random_frames(20, seed=3).unsqueeze(0)
    offline = codec.decode(frames, [SEED], [0])[0]

    def middle_with(context: int) -> torch.Tensor:
        window = frames[:, 10 - context : 14 + context]
        audio = codec.decode(window, [SEED], [10 - context])[0]
        return audio[context * 2048 : (context + 4) * 2048]

    reference = offline[10 * 2048 : 14 * 2048]
    exact = (middle_with(codec.receptive_field_tokens) - reference).abs().max()
    short = (middle_with(1) - reference).abs().max()
    assert exact <= 1e-5 < short
    assert short > 100 * max(float(exact), 1e-7)


async def test_concurrent_streams_are_batched_and_each_matches_its_own_offline_decode(
    codec: SnacCodec,
) -> None:
    """12 streams of different lengths and start times through one scheduler: forwards are shared,
    and every stream is still its own offline decode (noise seed 0, the scheduler's default)."""
    rng = random.Random(5)
    counts = [rng.randrange(4, 30) for _ in range(12)]
    recording = RecordingCodec(codec)  # type: ignore[arg-type]
    context = codec.receptive_field_tokens
    scheduler = Scheduler(recording, ChunkPolicy(2, 8, context, context))  # type: ignore[arg-type]
    frames = [random_frames(n, seed=100 + i) for i, n in enumerate(counts)]
    scheduler.start()
    try:
        streamed = await asyncio.gather(
            *(
                stream_through(
                    scheduler,
                    VoiceConditioning(),
                    [tuple(f.tolist()) for f in stream_frames],
                    2,
                    random.Random(i),
                    start_delay=rng.random() * 0.2,
                )
                for i, stream_frames in enumerate(frames)
            )
        )
    finally:
        await scheduler.stop()
    assert max(recording.batch_sizes) > 1, "windows of several streams share a forward"
    for stream_frames, chunks in zip(frames, streamed, strict=True):
        audio = torch.cat([c.samples for c in chunks]).numpy()
        offline = codec.decode(stream_frames.unsqueeze(0), [0], [0])[0].numpy()
        assert audio.size == offline.size == 2048 * len(stream_frames)
        assert np.abs(audio - offline).max() <= 1e-5
