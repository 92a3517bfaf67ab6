"""The Decode RPC over a real gRPC server: bad input fails only its own stream, the stream
limit refuses at once, and cancelled calls leave no stream behind."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from tests.services.vocoder.helpers import RecordingCodec, offline, refused, serving, tokens_for, voice
from voxserve.v1 import vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.receptive_field import measure_context
from voxserve.vocoder.scheduler import Scheduler, SchedulerLimits
from voxserve.vocoder.stream import ChunkPolicy

MAX_STREAMS = 24


def start(global_ids: Iterable[int]) -> vocoder_pb2.DecodeRequest:
    return vocoder_pb2.DecodeRequest(
        start=vocoder_pb2.DecodeStart(codec="bicodec", global_ids=list(global_ids))
    )


def frame(ids: list[int]) -> vocoder_pb2.DecodeRequest:
    return vocoder_pb2.DecodeRequest(frame=vocoder_pb2.DecodeFrame(token_ids=ids))


END = vocoder_pb2.DecodeRequest(end=vocoder_pb2.DecodeEnd())
GLOBALS = voice(1).global_ids


@dataclass
class Vocoder:
    stub: vocoder_pb2_grpc.VocoderStub
    scheduler: Scheduler
    address: str


@pytest.fixture
async def vocoder(tiny_bicodec: BiCodec) -> AsyncIterator[Vocoder]:
    context = measure_context(tiny_bicodec, 5e-5).context_tokens
    policy = ChunkPolicy(10, 80, context, context)
    limits = SchedulerLimits(max_streams=MAX_STREAMS)
    async with serving(tiny_bicodec, policy, max_stream_tokens=5000, limits=limits) as (address, scheduler):
        async with grpc.aio.insecure_channel(address) as channel:
            yield Vocoder(vocoder_pb2_grpc.VocoderStub(channel), scheduler, address)


async def decode(stub: vocoder_pb2_grpc.VocoderStub, messages: list[vocoder_pb2.DecodeRequest]) -> np.ndarray:
    """Write the messages (as a caller would, a few ms apart) while reading audio; raise the
    call's status if it is not OK. Writes after the server ended the call are dropped, as a
    caller's would be."""
    chunks = await decode_chunks(stub, messages)
    return np.concatenate([np.frombuffer(c.pcm_f32, np.float32) for c in chunks] or [np.zeros(0, np.float32)])


async def decode_chunks(
    stub: vocoder_pb2_grpc.VocoderStub, messages: list[vocoder_pb2.DecodeRequest]
) -> list[vocoder_pb2.AudioChunk]:
    """`decode`, keeping the chunks as the server sent them."""
    call = stub.Decode(timeout=60)

    async def write() -> None:
        try:
            for message in messages:
                await call.write(message)
                await asyncio.sleep(0.002)
            await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            pass

    writer = asyncio.create_task(write())
    chunks = [c async for c in call]
    await writer
    return chunks


def good_messages(n: int) -> list[vocoder_pb2.DecodeRequest]:
    tokens = tokens_for(1, n)
    return [start(GLOBALS), *(frame(tokens[i : i + 4]) for i in range(0, n, 4)), END]


BAD_STREAMS = {
    "tokens before start": ([frame([1, 2, 3]), END], "first message"),
    "second start": ([start(GLOBALS), frame([5] * 30), start(GLOBALS), END], "start may be sent only once"),
    "frames after end": ([start(GLOBALS), frame([5] * 30), END, frame([1, 2])], "after end"),
    "id out of range": ([start(GLOBALS), frame([5] * 30), frame([1, 8192]), END], "frame.token_ids[1]=8192"),
    "wrong global count": ([start(GLOBALS[:31]), frame([5] * 30), END], "global_ids"),
}


async def test_bad_streams_fail_alone_and_a_concurrent_stream_is_unaffected(
    vocoder: Vocoder, tiny_bicodec: BiCodec
) -> None:
    stub, scheduler = vocoder.stub, vocoder.scheduler
    solo = await decode(stub, good_messages(300))

    async def bad(messages: list[vocoder_pb2.DecodeRequest]) -> grpc.RpcError:
        return await asyncio.to_thread(refused, vocoder.address, messages)

    together, *errors = await asyncio.gather(
        decode(stub, good_messages(300)), *(bad(messages) for messages, _ in BAD_STREAMS.values())
    )
    for (name, (_, needle)), error in zip(BAD_STREAMS.items(), errors, strict=True):
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, name
        assert needle in (error.details() or ""), (name, error.details())
    assert solo.size == together.size == 320 * 300
    # Decoded in forwards shared with other streams or alone, the samples agree to the batching
    # tolerance (CPU kernels are not bitwise equal across batch sizes), and both match offline.
    assert np.max(np.abs(solo - together)) <= 1e-4
    reference = offline(tiny_bicodec, voice(1), tokens_for(1, 300)).numpy()
    assert np.max(np.abs(together - reference)) <= 1e-4
    await asyncio.sleep(0.1)
    assert scheduler.active_streams == 0


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:  # noqa: ASYNC109
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 - the scheduler offers no event to wait on
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def open_stream(stub: vocoder_pb2_grpc.VocoderStub, tokens: int) -> grpc.aio.StreamStreamCall:
    call = stub.Decode(timeout=60)
    await call.write(start(GLOBALS))
    await call.write(frame([3] * tokens))
    return call


async def test_streams_beyond_the_limit_are_refused_at_once(
    vocoder: Vocoder,
) -> None:
    stub, scheduler = vocoder.stub, vocoder.scheduler
    held = [await open_stream(stub, 5) for _ in range(MAX_STREAMS)]
    await until(lambda: scheduler.active_streams == MAX_STREAMS)
    error = await asyncio.to_thread(refused, vocoder.address, good_messages(20))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "maximum of 24 streams" in (error.details() or "")  # type: ignore[attr-defined]
    assert dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]["grpc-retry-pushback-ms"] == "500"
    for call in held:
        call.cancel()
    # Once streams leave, new ones are admitted again.
    await until(lambda: scheduler.active_streams == 0)
    assert (await decode(stub, good_messages(20))).size == 320 * 20


async def test_cancelled_calls_leave_no_stream_behind(
    vocoder: Vocoder,
) -> None:
    """200 calls cancelled at random points (before any audio, or after some chunks)."""
    stub, scheduler = vocoder.stub, vocoder.scheduler
    rng = random.Random(0)

    async def cancelled(i: int) -> None:
        tokens = rng.randrange(1, 200)
        call = await open_stream(stub, tokens)
        # 60 tokens are enough for at least two chunks (10 each plus a lookahead of 14).
        for _ in range(rng.randrange(0, 3) if tokens >= 60 else 0):
            await asyncio.wait_for(call.read(), 30)
        call.cancel()

    for wave in range(0, 200, MAX_STREAMS):
        await asyncio.gather(*(cancelled(i) for i in range(wave, min(200, wave + MAX_STREAMS))))
    await until(lambda: scheduler.active_streams == 0)
    assert (await decode(stub, good_messages(40))).size == 320 * 40


@pytest.mark.parametrize("resume", [0, 1, 3199, 3200, 45_000, 96_000, 200_000])
async def test_a_resumed_stream_sends_only_the_samples_after_the_resume_point(
    vocoder: Vocoder, resume: int
) -> None:
    tokens = tokens_for(1, 300)
    whole = await decode(vocoder.stub, good_messages(300))
    begin = vocoder_pb2.DecodeStart(codec="bicodec", global_ids=list(GLOBALS), resume_from_sample=resume)
    replay = [vocoder_pb2.DecodeRequest(start=begin), frame(tokens), END]
    call = vocoder.stub.Decode(iter(replay), timeout=60)
    chunks = [c async for c in call]
    resumed = np.concatenate([np.frombuffer(c.pcm_f32, np.float32) for c in chunks])
    assert chunks[0].sample_offset == min(resume, 96_000)
    assert chunks[-1].final
    offsets = [c.sample_offset for c in chunks]
    sizes = [len(c.pcm_f32) // 4 for c in chunks]
    assert offsets == [min(resume, 96_000) + sum(sizes[:i]) for i in range(len(chunks))]
    assert resumed.size == max(0, 96_000 - resume)
    # The replay decodes in other chunks than the paced stream: equal within the batching tolerance.
    assert np.max(np.abs(resumed - whole[resume:]), initial=0.0) <= 1e-4


async def replay_matches_the_paced_stream(
    stub: vocoder_pb2_grpc.VocoderStub,
    messages: list[vocoder_pb2.DecodeRequest],
    chunking_tolerance: float = 1e-4,
) -> None:
    """A paced stream, then its replay (every token at once, as after a failover) resuming at one
    of its chunk ends. Given every chunk end, the replay decodes the paced stream's windows and
    its samples are identical; given the ends up to the resume point (what a gateway knows), it
    goes on in chunks of its own choosing, which differ from the paced stream's as two paced runs
    of one stream do: within `chunking_tolerance`, the codec's measured bound between any two
    chunkings (BiCodec: twice its context tolerance). Chunk sizes follow the device's load, so
    which chunkings meet here depends on the machine's speed at the time."""
    paced = await decode_chunks(stub, messages)
    samples = np.concatenate([np.frombuffer(c.pcm_f32, np.float32) for c in paced])
    ends = [c.sample_offset + len(c.pcm_f32) // 4 for c in paced if not c.final]
    assert len(ends) >= 3, "the paced stream came in several chunks"
    tokens = [t for m in messages if m.HasField("frame") for t in m.frame.token_ids]
    for k in (1, len(ends) // 2, len(ends) - 1):
        for known in (ends[:k], ends):
            begin = vocoder_pb2.DecodeStart()
            begin.CopyFrom(messages[0].start)
            begin.resume_from_sample, begin.replay_chunk_ends[:] = ends[k - 1], known
            call = stub.Decode(iter([vocoder_pb2.DecodeRequest(start=begin), frame(tokens), END]), timeout=60)
            replayed = [c async for c in call]
            assert replayed[0].sample_offset == ends[k - 1]
            following = np.concatenate([np.frombuffer(c.pcm_f32, np.float32) for c in replayed])
            assert following.size == samples.size - ends[k - 1]
            if known is ends:
                assert np.array_equal(following, samples[ends[k - 1] :])
            else:
                assert np.abs(following - samples[ends[k - 1] :]).max() <= chunking_tolerance


async def test_a_replay_in_the_failed_replicas_chunks_continues_it_exactly(vocoder: Vocoder) -> None:
    await replay_matches_the_paced_stream(vocoder.stub, good_messages(300))


@pytest.mark.parametrize(
    ("ends", "message"),
    [
        ([3200, 2880], "start.replay_chunk_ends[1]=2880: chunk ends must increase by 1 to 80 tokens"),
        ([0], "start.replay_chunk_ends[0]=0: chunk ends must increase"),
        ([3210], "start.replay_chunk_ends[0]=3210 is not a whole number of tokens (320 samples each)"),
        ([3200, 3200 + 81 * 320], "start.replay_chunk_ends[1]=29120: chunk ends must increase by 1 to 80"),
        ([80 * 320 * (i + 1) for i in range(63)], "the last end is 5040 tokens; the limit is 5000"),
    ],
)
async def test_replay_chunk_ends_a_replica_could_not_have_sent_are_refused(
    vocoder: Vocoder, ends: list[int], message: str
) -> None:
    begin = vocoder_pb2.DecodeStart(codec="bicodec", global_ids=list(GLOBALS), replay_chunk_ends=ends)
    error = await asyncio.to_thread(refused, vocoder.address, [vocoder_pb2.DecodeRequest(start=begin), END])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (error.details() or "")


async def test_a_negative_resume_point_is_refused(vocoder: Vocoder) -> None:
    begin = vocoder_pb2.DecodeStart(codec="bicodec", global_ids=list(GLOBALS), resume_from_sample=-1)
    error = await asyncio.to_thread(refused, vocoder.address, [vocoder_pb2.DecodeRequest(start=begin), END])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "start.resume_from_sample is -1" in (error.details() or "")


def streams_ended(outcome: str) -> float:
    return REGISTRY.get_sample_value("voxserve_vocoder_streams_total", {"outcome": outcome}) or 0.0


async def test_a_failed_decode_is_internal_and_every_outcome_is_counted(tiny_bicodec: BiCodec) -> None:
    codec = RecordingCodec(tiny_bicodec, fail=True)
    outcomes = ("completed", "cancelled", "invalid", "refused", "error")
    before = {outcome: streams_ended(outcome) for outcome in outcomes}
    limits = SchedulerLimits(max_streams=1)
    async with serving(codec, ChunkPolicy(10, 80, 4, 4), max_stream_tokens=5000, limits=limits) as (
        address,
        scheduler,
    ):
        failed = await asyncio.to_thread(refused, address, good_messages(20))
        assert failed.code() == grpc.StatusCode.INTERNAL
        assert failed.details() == "decode failed: device lost"
        codec.fail = False
        invalid = await asyncio.to_thread(refused, address, [frame([1, 2, 3]), END])
        assert invalid.code() == grpc.StatusCode.INVALID_ARGUMENT
        async with grpc.aio.insecure_channel(address) as channel:
            stub = vocoder_pb2_grpc.VocoderStub(channel)
            assert (await decode(stub, good_messages(20))).size == 320 * 20
            held = await open_stream(stub, 5)
            await until(lambda: scheduler.active_streams == 1)
            over = await asyncio.to_thread(refused, address, good_messages(20))
            assert over.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            held.cancel()
            await until(lambda: streams_ended("cancelled") == before["cancelled"] + 1)
    assert {outcome: streams_ended(outcome) - before[outcome] for outcome in outcomes} == dict.fromkeys(
        outcomes, 1.0
    )
