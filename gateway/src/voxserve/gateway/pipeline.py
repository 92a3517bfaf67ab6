"""One text segment through generator and vocoder, pipelined, surviving a failed replica.

The generator's frames are forwarded to the vocoder the moment they arrive (a forwarding task)
while decoded chunks are read back at the same time; both sides feed one queue, so a failure on
either side ends the segment at once instead of leaving the other waiting.

Decoding is a pure function of (tokens, voice, seed, chunk windows), so when a vocoder replica
fails mid-stream the segment's messages are replayed on another replica, in the same chunk
windows the failed one used, and it resumes at the next sample the gateway has not yet passed
on: every sample arrives once, and the samples continue as the failed replica would have.

A generator replica that fails before any audio of the segment went out is replaced by another
for a second attempt; after audio went out the rest could not match it, so the segment fails
with UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import grpc

from voxserve.common.logging import get_logger
from voxserve.common.request_id import outgoing_metadata
from voxserve.common.status import RETRY_PUSHBACK, CallError
from voxserve.families.family import Family
from voxserve.v1 import generator_pb2, generator_pb2_grpc, vocoder_pb2, vocoder_pb2_grpc


class UpstreamError(CallError):
    """A generator or vocoder call failed; the gateway relays its status (and, when the upstream
    was overloaded, the retry pushback)."""

    outcome = "upstream_error"

    def __init__(self, service: str, status: grpc.StatusCode, details: str):
        super().__init__(f"{service}: {details}")
        self.service = service
        self.upstream_status = status
        self.details = details

    @property
    def status(self) -> grpc.StatusCode:
        return self.upstream_status

    @property
    def trailers(self) -> Sequence[tuple[str, str]]:
        return RETRY_PUSHBACK if self.upstream_status == grpc.StatusCode.RESOURCE_EXHAUSTED else ()


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
    tokens_forwarded: int = 0
    """Tokens sent to the vocoder so far: each becomes samples_per_token samples of the segment."""


@dataclass(frozen=True)
class SegmentJob:
    """One text segment to run: what the generator is asked, and how its tokens are decoded."""

    request: generator_pb2.GenerateRequest
    family: Family
    """The voice's family: its codec, generator tokens per vocoder token, and whether the
    generator writes the voice (the vocoder stream then opens on the generator's global ids)."""
    seed: int
    stats: SegmentStats = field(default_factory=SegmentStats)
    s3_prompt: vocoder_pb2.S3Prompt | None = None
    """The vocoder flow's prompt, for a voice that has one."""
    deadline_seconds: float | None = None
    """The caller's remaining deadline, passed upstream."""

    def decode_start(self, global_ids: Sequence[int] = ()) -> vocoder_pb2.DecodeStart:
        return vocoder_pb2.DecodeStart(
            codec=self.family.codec, global_ids=global_ids, seed=self.seed, s3_prompt=self.s3_prompt
        )


class SegmentRunner(Protocol):
    """Runs one text segment to audio chunks (the gateway's runner calls generator and vocoder).

    A runner reports its progress in `job.stats`, which `Synthesis` waits on: `global_ids` and
    `voice_known` once the voice is known (spark), `tokens_forwarded` as tokens go to decoding, and
    `generated` once the generator's last frame has arrived. The next segment, and the end of
    the call after the last one, wait for `generated`."""

    def __call__(self, job: SegmentJob) -> AsyncIterator[vocoder_pb2.AudioChunk]: ...


def _upstream(service: str, exc: grpc.aio.AioRpcError) -> UpstreamError:
    return UpstreamError(service, exc.code(), exc.details() or "")


log = get_logger(__name__)
Stub = TypeVar("Stub")
# A replica that went away (process died, connection reset) reports UNAVAILABLE; any other
# status is an answer about the request itself and would be the same on every replica.
FAILOVER_CODES = frozenset({grpc.StatusCode.UNAVAILABLE})
MAX_VOCODER_FAILOVERS = 2


class Replicas(Generic[Stub]):
    """The stubs of one service's replicas, taken in turn so that streams spread over them."""

    def __init__(self, stubs: Sequence[Stub]):
        if not stubs:
            raise ValueError("at least one replica is needed")
        self.stubs = list(stubs)
        self._turn = 0

    def pick(self, avoid: Stub | None = None) -> Stub:
        """The next replica in turn, other than `avoid` when there is another."""
        for _ in range(len(self.stubs)):
            stub = self.stubs[self._turn % len(self.stubs)]
            self._turn += 1
            if stub is not avoid or len(self.stubs) == 1:
                return stub
        return self.stubs[0]

    def __len__(self) -> int:
        return len(self.stubs)


class VocoderLink:
    """A segment's Decode stream, which moves to another replica when its own fails."""

    def __init__(
        self, replicas: Replicas[vocoder_pb2_grpc.VocoderStub], metadata: tuple, deadline: float | None
    ):
        self.replicas = replicas
        self.metadata = metadata
        self.deadline = deadline
        self.sent: list[vocoder_pb2.DecodeRequest | None] = []
        """Every message written so far (None: the half-close), for a replay."""
        self.delivered = 0
        """Samples passed on to the caller: a replay resumes after them."""
        self.chunk_ends: list[int] = []
        """Where each chunk received so far ended (sample offsets): a replay decodes the same windows."""
        self.failovers = 0
        self._lock = asyncio.Lock()
        self.stub = replicas.pick()
        self.call = self._open()

    def _open(self) -> grpc.aio.StreamStreamCall:
        timeout = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
        return self.stub.Decode(metadata=self.metadata, timeout=timeout)

    async def send(self, message: vocoder_pb2.DecodeRequest | None) -> None:
        """Write a message (None half-closes). A write to a call that already ended is dropped:
        the reading side reports that call's status, or replays everything elsewhere."""
        async with self._lock:
            self.sent.append(message)
            await self._write(message)

    async def _write(self, message: vocoder_pb2.DecodeRequest | None) -> None:
        try:
            await (self.call.done_writing() if message is None else self.call.write(message))
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            pass

    async def chunks(self) -> AsyncIterator[vocoder_pb2.AudioChunk]:
        while True:
            try:
                async for chunk in self.call:
                    samples = len(chunk.pcm_f32) // 4
                    self.delivered += samples
                    if samples and not chunk.final:
                        self.chunk_ends.append(chunk.sample_offset + samples)
                    yield chunk
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in FAILOVER_CODES or self.failovers >= MAX_VOCODER_FAILOVERS:
                    raise _upstream("vocoder", exc) from exc
                await self._replay(exc)

    async def _replay(self, failure: grpc.aio.AioRpcError) -> None:
        async with self._lock:
            self.failovers += 1
            self.call.cancel()
            self.stub = self.replicas.pick(avoid=self.stub)
            self.call = self._open()
            log.warning(
                "vocoder replica failed; replaying the stream",
                code=failure.code().name,
                details=failure.details(),
                resume_from_sample=self.delivered,
                messages=len(self.sent),
            )
            for message in self.sent:
                if message is not None and message.HasField("start"):
                    message = vocoder_pb2.DecodeRequest(start=message.start)
                    message.start.resume_from_sample = self.delivered
                    message.start.replay_chunk_ends[:] = self.chunk_ends
                await self._write(message)

    def cancel(self) -> None:
        self.call.cancel()


async def run_segment(
    generators: Replicas[generator_pb2_grpc.GeneratorStub],
    vocoders: Replicas[vocoder_pb2_grpc.VocoderStub],
    job: SegmentJob,
) -> AsyncIterator[vocoder_pb2.AudioChunk]:
    """Audio chunks of one segment.

    A voice known in advance (an s3 prompt; a speaker in the generator's prompt) opens the
    vocoder stream at once, while the generator is still reading the prompt; a voice the
    generator writes (`Family.voice_from_generator`) opens it when the generator sends its
    global ids.
    """
    deadline = None if job.deadline_seconds is None else time.monotonic() + job.deadline_seconds
    generator = generators.pick()
    for attempt in range(2):
        delivered = 0
        try:
            async for chunk in _attempt(generator, vocoders, job, deadline):
                delivered += len(chunk.pcm_f32) // 4
                yield chunk
            return
        except UpstreamError as exc:
            if exc.service != "generator" or exc.status not in FAILOVER_CODES:
                raise
            if delivered:
                raise UpstreamError(
                    "generator",
                    exc.status,
                    f"the generator failed after {delivered} samples of this segment were sent, and "
                    f"the rest could not match them: {exc.details}",
                ) from exc
            if attempt or len(generators) == 1:
                raise
            log.warning("generator replica failed before any audio; trying another", details=exc.details)
            generator = generators.pick(avoid=generator)


async def _attempt(
    generator: generator_pb2_grpc.GeneratorStub,
    vocoders: Replicas[vocoder_pb2_grpc.VocoderStub],
    job: SegmentJob,
    deadline: float | None,
) -> AsyncIterator[vocoder_pb2.AudioChunk]:
    metadata = outgoing_metadata()
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    gen_call = generator.Generate(job.request, metadata=metadata, timeout=timeout)
    stats = job.stats
    link = VocoderLink(vocoders, metadata, deadline)
    inbox: asyncio.Queue[vocoder_pb2.AudioChunk | BaseException] = asyncio.Queue()

    async def forward() -> None:
        opened = False
        stats.tokens_forwarded = 0  # a retried attempt starts over: nothing of the failed one plays
        codes_per_token = job.family.codes_per_token
        try:
            if not job.family.voice_from_generator:
                await link.send(vocoder_pb2.DecodeRequest(start=job.decode_start()))
                opened = True
            async for frame in gen_call:
                if frame.global_ids:
                    stats.global_ids = tuple(frame.global_ids)
                    stats.voice_known.set()
                    await link.send(vocoder_pb2.DecodeRequest(start=job.decode_start(frame.global_ids)))
                    opened = True
                if frame.semantic_ids:
                    if not opened:
                        raise UpstreamError(
                            "generator", grpc.StatusCode.INTERNAL, "semantic ids before global ids"
                        )
                    if stats.first_token_at is None:
                        stats.first_token_at = time.monotonic()
                    token_frame = vocoder_pb2.DecodeFrame(token_ids=frame.semantic_ids)
                    await link.send(vocoder_pb2.DecodeRequest(frame=token_frame))
                    stats.tokens_forwarded += len(frame.semantic_ids) // codes_per_token
                if frame.HasField("result"):
                    stats.result.CopyFrom(frame.result)
            stats.generated.set()
            if not opened:
                raise UpstreamError("generator", grpc.StatusCode.INTERNAL, "the generator sent no global ids")
            await link.send(vocoder_pb2.DecodeRequest(end=vocoder_pb2.DecodeEnd()))
            await link.send(None)
        except grpc.aio.AioRpcError as exc:
            inbox.put_nowait(_upstream("generator", exc))
        except Exception as exc:  # ours or a malformed frame: the segment fails, it never hangs
            inbox.put_nowait(exc)

    async def read() -> None:
        try:
            async for chunk in link.chunks():
                inbox.put_nowait(chunk)
        except Exception as exc:
            inbox.put_nowait(exc)

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
        link.cancel()


def remote_runner(
    generators: Sequence[generator_pb2_grpc.GeneratorStub], vocoders: Sequence[vocoder_pb2_grpc.VocoderStub]
) -> SegmentRunner:
    """The gateway's runner: each segment through one of the generator and vocoder replicas."""
    return functools.partial(run_segment, Replicas(generators), Replicas(vocoders))
