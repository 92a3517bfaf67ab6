"""Replica lists: parsed from settings, taken in turn, and another one picked after a failure;
a segment retried on another generator counts only the tokens of the attempt that plays."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from voxserve.families import orpheus, spark
from voxserve.gateway.app import addresses
from voxserve.gateway.pipeline import Replicas, SegmentJob, SegmentStats, run_segment
from voxserve.v1 import generator_pb2, vocoder_pb2


def test_addresses_split_on_commas_and_drop_blanks() -> None:
    assert addresses(" a:1, b:2 ,,c:3") == ["a:1", "b:2", "c:3"]
    assert addresses("dns:///vocoder:50053") == ["dns:///vocoder:50053"]


def test_replicas_are_taken_in_turn() -> None:
    replicas = Replicas(["a", "b", "c"])
    assert [replicas.pick() for _ in range(5)] == ["a", "b", "c", "a", "b"]


def test_pick_avoids_the_failed_replica_when_there_is_another() -> None:
    replicas = Replicas(["a", "b"])
    assert replicas.pick(avoid="a") == "b"
    assert replicas.pick(avoid="a") == "b"
    assert Replicas(["only"]).pick(avoid="only") == "only"


def test_no_replicas_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one replica"):
        Replicas([])


class GeneratorCall:
    """A Generate call that sends the voice and `tokens` semantic ids, then fails or finishes."""

    def __init__(self, tokens: int, fail: bool):
        self.tokens, self.fail = tokens, fail

    def cancel(self) -> None:
        pass

    async def __aiter__(self) -> AsyncIterator[generator_pb2.TokenFrame]:
        yield generator_pb2.TokenFrame(global_ids=list(range(32)))
        yield generator_pb2.TokenFrame(semantic_ids=[5] * self.tokens)
        if self.fail:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "replica went away"
            )


class Generator:
    def __init__(self, tokens: int, fail: bool):
        self.tokens, self.fail = tokens, fail

    def Generate(self, request: Any, **kwargs: Any) -> GeneratorCall:
        return GeneratorCall(self.tokens, self.fail)


class VocoderCall:
    """A Decode call that sends all the stream's samples in one final chunk after End."""

    def __init__(self) -> None:
        self.tokens = 0
        self.ended = asyncio.Event()

    async def write(self, message: vocoder_pb2.DecodeRequest) -> None:
        if message.HasField("frame"):
            self.tokens += len(message.frame.token_ids)
        if message.HasField("end"):
            self.ended.set()

    async def done_writing(self) -> None:
        pass

    def cancel(self) -> None:
        pass

    async def __aiter__(self) -> AsyncIterator[vocoder_pb2.AudioChunk]:
        await self.ended.wait()
        pcm = bytes(4 * 320 * self.tokens)
        yield vocoder_pb2.AudioChunk(pcm_f32=pcm, sample_offset=0, sample_rate=16000, final=True)


class Vocoder:
    def Decode(self, **kwargs: Any) -> VocoderCall:
        return VocoderCall()


async def test_a_segment_retried_on_another_generator_counts_only_the_tokens_that_play() -> None:
    generators = Replicas([Generator(tokens=20, fail=True), Generator(tokens=7, fail=False)])
    stats = SegmentStats()
    chunks = [
        chunk
        async for chunk in run_segment(
            generators,
            Replicas([Vocoder()]),
            SegmentJob(generator_pb2.GenerateRequest(text="x"), spark.FAMILY, seed=0, stats=stats),
        )
    ]
    assert sum(len(c.pcm_f32) // 4 for c in chunks) == 7 * 320
    # The stitcher trusts this count for how much audio is still to come.
    assert stats.tokens_forwarded == 7


class BrokenGenerator:
    def Generate(self, request: Any, **kwargs: Any) -> Any:
        class Call:
            def cancel(self) -> None:
                pass

            async def __aiter__(self) -> AsyncIterator[Any]:
                yield object()  # no TokenFrame: reading it fails

        return Call()


async def test_a_failure_that_is_no_status_ends_the_segment_instead_of_hanging_it() -> None:
    segment = run_segment(
        Replicas([BrokenGenerator()]),
        Replicas([Vocoder()]),
        SegmentJob(generator_pb2.GenerateRequest(text="x"), spark.FAMILY, seed=0),
    )
    with pytest.raises(AttributeError):
        await asyncio.wait_for(anext(segment), 10)


class OrpheusGenerator:
    """Sends no voice (it is in the prompt): two SNAC frames of 7 codes, then the result."""

    def Generate(self, request: Any, **kwargs: Any) -> Any:
        class Call:
            def cancel(self) -> None:
                pass

            async def __aiter__(self) -> AsyncIterator[generator_pb2.TokenFrame]:
                yield generator_pb2.TokenFrame(semantic_ids=list(range(14)))
                yield generator_pb2.TokenFrame(result=generator_pb2.GenerateResult(semantic_tokens=14))

        return Call()


class RecordingVocoder(Vocoder):
    def __init__(self) -> None:
        self.calls: list[VocoderCall] = []
        self.starts: list[vocoder_pb2.DecodeStart] = []

    def Decode(self, **kwargs: Any) -> VocoderCall:
        call = VocoderCall()
        write = call.write

        async def recording(message: vocoder_pb2.DecodeRequest) -> None:
            if message.HasField("start"):
                self.starts.append(message.start)
            await write(message)

        call.write = recording  # type: ignore[method-assign]
        self.calls.append(call)
        return call


async def test_a_snac_stream_opens_without_a_voice_and_counts_frames_not_codes() -> None:
    vocoder = RecordingVocoder()
    stats = SegmentStats()
    segment = run_segment(
        Replicas([OrpheusGenerator()]),
        Replicas([vocoder]),
        SegmentJob(generator_pb2.GenerateRequest(text="x"), orpheus.FAMILY, seed=4, stats=stats),
    )
    chunks = [chunk async for chunk in segment]
    assert [(s.codec, list(s.global_ids), s.seed) for s in vocoder.starts] == [("snac", [], 4)]
    assert vocoder.calls[0].tokens == 14 and len(chunks) == 1
    # The stitcher multiplies this by 2048 samples: it must count SNAC frames.
    assert stats.tokens_forwarded == 2 and stats.result.semantic_tokens == 14
