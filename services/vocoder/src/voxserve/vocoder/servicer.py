"""`voxserve.v1.Vocoder`: a bidirectional decode stream per utterance segment."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np

from voxserve.common.logging import get_logger
from voxserve.common.status import CallError, InvalidArgument, call_outcome
from voxserve.v1 import vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder import metrics
from voxserve.vocoder.codecs.base import Codec, CodecInputError, VoiceConditioning
from voxserve.vocoder.scheduler import Scheduler
from voxserve.vocoder.stream import Chunk, DecodeStream
from voxserve.vocoder.voice_encoding import VoiceEncoding

log = get_logger(__name__)

# After the last chunk, how long to wait for the caller to close its side.
CLOSE_WAIT_SECONDS = 0.5
# A caller's string quoted in an error is cut to this many characters (all details are bounded
# anyway, see `bounded_details`; this keeps the rest of the message).
MAX_ECHO_CHARS = 64


class DecodeFailed(CallError):
    """The codec failed on a window of the stream (INTERNAL: the caller's input was valid)."""


def echo(value: str) -> str:
    """`value` quoted for an error message, cut to MAX_ECHO_CHARS characters."""
    if len(value) <= MAX_ECHO_CHARS:
        return repr(value)
    return f"{value[:MAX_ECHO_CHARS]!r}... ({len(value)} characters)"


def validate_token_ids(ids: list[int], vocab_size: int) -> None:
    bad = next((i for i, t in enumerate(ids) if not 0 <= t < vocab_size), None)
    if bad is not None:
        raise InvalidArgument(f"frame.token_ids[{bad}]={ids[bad]} is out of range [0, {vocab_size})")


def voice_conditioning(start: vocoder_pb2.DecodeStart) -> VoiceConditioning:
    """The voice fields of a start message, as the codec's `condition` takes them."""
    prompt = start.s3_prompt if start.HasField("s3_prompt") else None
    if prompt is not None and len(prompt.prompt_mel_f32) % 4:
        raise CodecInputError(
            f"s3_prompt.prompt_mel_f32 has {len(prompt.prompt_mel_f32)} bytes: not whole float32 values"
        )
    return VoiceConditioning(
        global_ids=tuple(start.global_ids),
        prompt_tokens=() if prompt is None else tuple(prompt.prompt_tokens),
        prompt_mel=None if prompt is None else np.frombuffer(prompt.prompt_mel_f32, dtype="<f4"),
        xvector=() if prompt is None else tuple(prompt.xvector),
    )


class VocoderServicer(vocoder_pb2_grpc.VocoderServicer):
    def __init__(
        self,
        codec: Codec,
        scheduler: Scheduler,
        *,
        max_stream_tokens: int,
        voice_encoding: VoiceEncoding | None = None,
    ):
        self.codec = codec
        self.scheduler = scheduler
        self.max_stream_tokens = max_stream_tokens
        self.voice_encoding = voice_encoding or VoiceEncoding(codec, max_encodes=1, max_seconds=120.0)

    async def EncodeVoice(
        self, request: vocoder_pb2.EncodeVoiceRequest, context: grpc.aio.ServicerContext
    ) -> vocoder_pb2.EncodedVoice:
        async with call_outcome(context, metrics.ENCODES) as outcome:
            encoded = await self.voice_encoding.encode(request)
            outcome.value = "completed"
            return encoded

    async def _open(self, requests: AsyncIterator[vocoder_pb2.DecodeRequest]) -> DecodeStream:
        first = await anext(requests, None)
        if first is None or first.WhichOneof("message") != "start":
            raise InvalidArgument("the first message of a Decode stream must be start")
        start = first.start
        if start.codec != self.codec.name:
            raise InvalidArgument(
                f"start.codec {echo(start.codec)} is unknown; this vocoder serves {self.codec.name!r}"
            )
        try:
            conditioning = self.codec.condition(voice_conditioning(start))
        except CodecInputError as exc:
            raise InvalidArgument(f"start.{exc}") from exc
        if start.resume_from_sample < 0:
            raise InvalidArgument(f"start.resume_from_sample is {start.resume_from_sample}; it must be >= 0")
        replay_ends = self._replay_ends(list(start.replay_chunk_ends))
        stream = self.scheduler.register(conditioning, seed=start.seed)
        stream.resume_from_sample = start.resume_from_sample
        stream.replay_ends.extend(replay_ends)
        return stream

    def _replay_ends(self, ends: list[int]) -> list[int]:
        """`start.replay_chunk_ends` as token counts, checked against what a replica could have sent."""
        per_token = self.codec.samples_per_token
        longest = self.scheduler.policy.max_chunk_tokens
        tokens, previous = [], 0
        for i, end in enumerate(ends):
            field_name = f"start.replay_chunk_ends[{i}]={end}"
            if end % per_token:
                raise InvalidArgument(
                    f"{field_name} is not a whole number of tokens ({per_token} samples each)"
                )
            if not 0 < end // per_token - previous <= longest:
                raise InvalidArgument(
                    f"{field_name}: chunk ends must increase by 1 to {longest} tokens "
                    f"({longest * per_token} samples) each"
                )
            previous = end // per_token
            tokens.append(previous)
        if previous > self.max_stream_tokens:
            raise InvalidArgument(
                f"start.replay_chunk_ends: the last end is {previous} tokens; "
                f"the limit is {self.max_stream_tokens}"
            )
        return tokens

    def _tokens(self, ids: list[int]) -> list[Any]:
        """A frame message's ids, checked, as stream tokens: ids, or whole frames of codes."""
        validate_token_ids(ids, self.codec.token_vocab_size)
        per = self.codec.codes_per_token
        if per == 1:
            return ids
        if len(ids) % per:
            raise InvalidArgument(
                f"frame.token_ids holds {len(ids)} codes; {self.codec.name} takes whole frames of {per}"
            )
        return [tuple(ids[i : i + per]) for i in range(0, len(ids), per)]

    async def _feed(self, stream: DecodeStream, requests: AsyncIterator[vocoder_pb2.DecodeRequest]) -> None:
        """Move the caller's frames into the stream until End; protocol errors fail the stream."""
        try:
            async for request in requests:
                kind = request.WhichOneof("message")
                if stream.ended:
                    raise InvalidArgument(f"{kind} message after end: a stream takes no messages after end")
                if kind == "frame":
                    tokens = self._tokens(list(request.frame.token_ids))
                    total = len(stream.tokens) + len(tokens)
                    if total > self.max_stream_tokens:
                        raise InvalidArgument(
                            f"frame.token_ids: the stream would hold {total} tokens; "
                            f"the limit is {self.max_stream_tokens}"
                        )
                    stream.append(tokens)
                elif kind == "end":
                    stream.end()
                else:
                    raise InvalidArgument(f"unexpected {kind} message: start may be sent only once, first")
                self.scheduler.notify()
            if not stream.ended:
                raise InvalidArgument("the request stream closed without an end message")
        except InvalidArgument as exc:
            stream.fail(exc)

    async def Decode(
        self, request_iterator: AsyncIterator[vocoder_pb2.DecodeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[vocoder_pb2.AudioChunk]:
        stream: DecodeStream | None = None
        feeder: asyncio.Task[None] | None = None
        try:
            async with call_outcome(context, metrics.STREAMS) as outcome:
                stream = await self._open(request_iterator)
                feeder = asyncio.create_task(self._feed(stream, request_iterator))
                while True:
                    item = await stream.outbox.get()
                    if isinstance(item, InvalidArgument):
                        raise item
                    if isinstance(item, BaseException):
                        raise DecodeFailed(f"decode failed: {item}") from item
                    chunk = self._audio_chunk(stream, item)
                    if chunk is not None:
                        yield chunk
                    if item.final:
                        break
                outcome.value = "completed"
                # A message the caller sent after End is refused even when it arrives after the
                # last chunk went out.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(feeder), CLOSE_WAIT_SECONDS)
                late = stream.outbox.get_nowait() if not stream.outbox.empty() else None
                if isinstance(late, InvalidArgument):
                    raise late
        finally:
            if feeder is not None:
                feeder.cancel()
            if stream is not None:
                self.scheduler.remove(stream)
                log.info("decode stream closed", outcome=outcome.value, tokens=len(stream.tokens))

    def _audio_chunk(self, stream: DecodeStream, chunk: Chunk) -> vocoder_pb2.AudioChunk | None:
        """A decoded chunk as the caller gets it: without the samples it already holds (None when
        it holds them all and more chunks follow)."""
        samples = chunk.samples.numpy().astype(np.float32, copy=False)
        offset = chunk.sample_offset
        held = stream.resume_from_sample - offset
        if held > 0:
            if held >= samples.size and not chunk.final:
                return None
            samples, offset = samples[held:], offset + min(held, samples.size)
        return vocoder_pb2.AudioChunk(
            pcm_f32=samples.tobytes(),
            sample_offset=offset,
            sample_rate=self.codec.sample_rate,
            final=chunk.final,
        )
