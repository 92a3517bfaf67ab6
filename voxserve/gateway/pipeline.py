"""One text segment through generator and vocoder, pipelined.

The generator's frames are forwarded to the vocoder the moment they arrive (a forwarding task)
while decoded chunks are read back at the same time; both sides feed one queue, so a failure on
either side ends the segment at once instead of leaving the other waiting.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from voxserve.common.request_id import outgoing_metadata
from voxserve.v1 import generator_pb2, generator_pb2_grpc, vocoder_pb2, vocoder_pb2_grpc

CODEC_OF_FAMILY = {"spark": "bicodec", "s3": "s3gen"}


class UpstreamError(Exception):
    """A generator or vocoder call failed; carries its status so the gateway can relay it."""

    def __init__(self, service: str, code: grpc.StatusCode, details: str):
        super().__init__(f"{service}: {details}")
        self.service = service
        self.code = code
        self.details = details


class _VocoderClosed(Exception):
    """The vocoder call ended while frames were still being written."""


@dataclass
class SegmentStats:
    first_token_at: float | None = None
    result: generator_pb2.GenerateResult = field(default_factory=generator_pb2.GenerateResult)
    global_ids: tuple[int, ...] = ()
    """The voice's global ids as the generator sent them (spark)."""
    voice_known: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the global ids are known, so later segments can be started in the same voice."""
    generated: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the generator has sent its last frame: the next segment may take the generator."""


class SegmentRunner(Protocol):
    """Runs one text segment to audio chunks (the gateway's runner calls generator and vocoder)."""

    def __call__(
        self,
        request: generator_pb2.GenerateRequest,
        *,
        codec: str,
        seed: int,
        stats: SegmentStats,
        deadline_seconds: float | None = None,
        s3_prompt: vocoder_pb2.S3Prompt | None = None,
    ) -> AsyncIterator[vocoder_pb2.AudioChunk]: ...


def _upstream(service: str, exc: grpc.aio.AioRpcError) -> UpstreamError:
    return UpstreamError(service, exc.code(), exc.details() or "")


async def run_segment(
    generator: generator_pb2_grpc.GeneratorStub,
    vocoder: vocoder_pb2_grpc.VocoderStub,
    request: generator_pb2.GenerateRequest,
    *,
    codec: str,
    seed: int,
    stats: SegmentStats,
    deadline_seconds: float | None = None,
    s3_prompt: vocoder_pb2.S3Prompt | None = None,
) -> AsyncIterator[vocoder_pb2.AudioChunk]:
    """Audio chunks of one segment; `deadline_seconds`: the caller's remaining deadline, passed upstream.

    A voice known in advance (`s3_prompt`) opens the vocoder stream at once, while the generator
    is still reading the prompt; a spark stream opens when the generator sends its global ids.
    """
    metadata = outgoing_metadata()
    gen_call = generator.Generate(request, metadata=metadata, timeout=deadline_seconds)
    voc_call = vocoder.Decode(metadata=metadata, timeout=deadline_seconds)
    inbox: asyncio.Queue[vocoder_pb2.AudioChunk | BaseException] = asyncio.Queue()

    async def send(message: vocoder_pb2.DecodeRequest | None) -> None:
        """Write a message to the vocoder; None half-closes the request stream."""
        try:
            await (voc_call.done_writing() if message is None else voc_call.write(message))
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
            raise _VocoderClosed from exc

    async def forward() -> None:
        opened = False
        try:
            if s3_prompt is not None:
                start = vocoder_pb2.DecodeStart(codec=codec, seed=seed, s3_prompt=s3_prompt)
                await send(vocoder_pb2.DecodeRequest(start=start))
                opened = True
            async for frame in gen_call:
                if frame.global_ids:
                    stats.global_ids = tuple(frame.global_ids)
                    stats.voice_known.set()
                    start = vocoder_pb2.DecodeStart(codec=codec, global_ids=frame.global_ids, seed=seed)
                    await send(vocoder_pb2.DecodeRequest(start=start))
                    opened = True
                if frame.semantic_ids:
                    if not opened:
                        raise UpstreamError(
                            "generator", grpc.StatusCode.INTERNAL, "semantic ids before global ids"
                        )
                    if stats.first_token_at is None:
                        stats.first_token_at = time.monotonic()
                    token_frame = vocoder_pb2.DecodeFrame(token_ids=frame.semantic_ids)
                    await send(vocoder_pb2.DecodeRequest(frame=token_frame))
                if frame.HasField("result"):
                    stats.result.CopyFrom(frame.result)
            stats.generated.set()
            if not opened:
                raise UpstreamError("generator", grpc.StatusCode.INTERNAL, "the generator sent no global ids")
            await send(vocoder_pb2.DecodeRequest(end=vocoder_pb2.DecodeEnd()))
            await send(None)
        except grpc.aio.AioRpcError as exc:
            inbox.put_nowait(_upstream("generator", exc))
        except UpstreamError as exc:
            inbox.put_nowait(exc)
        except _VocoderClosed:
            pass  # the reading side reports the vocoder's status

    async def read() -> None:
        try:
            async for chunk in voc_call:
                inbox.put_nowait(chunk)
        except grpc.aio.AioRpcError as exc:
            inbox.put_nowait(_upstream("vocoder", exc))

    tasks = [asyncio.create_task(forward()), asyncio.create_task(read())]
    try:
        while True:
            item = await inbox.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.final:
                break
        await tasks[0]
    finally:
        for task in tasks:
            task.cancel()
        gen_call.cancel()
        voc_call.cancel()


def remote_runner(
    generator: generator_pb2_grpc.GeneratorStub, vocoder: vocoder_pb2_grpc.VocoderStub
) -> SegmentRunner:
    """The gateway's runner: the segment through a generator and a vocoder service."""
    return functools.partial(run_segment, generator, vocoder)
