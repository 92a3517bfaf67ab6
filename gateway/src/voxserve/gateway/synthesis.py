"""One request's text segments through generator and vocoder, stitched into one audio stream.

Segments are pipelined: once segment k's tokens are all generated, and while k is still being
decoded and streamed, segment k+1 is generated and decoded (at most `segments_in_flight` at
once); its audio waits in memory and reaches the client strictly after segment k's.

All segments speak in one voice: a spark request without fixed global ids takes the 32 ids its
first segment generated and prefills them into every later segment's prompt.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc
import numpy as np

from voxserve.gateway.audio import f32_from_bytes
from voxserve.gateway.config import GatewayConfig
from voxserve.gateway.pipeline import SegmentJob, SegmentRunner, SegmentStats, UpstreamError
from voxserve.gateway.stitcher import Stitcher
from voxserve.gateway.voices import Voice
from voxserve.v1 import generator_pb2, speech_pb2

FinishReason = generator_pb2.GenerateResult.FinishReason

_Item = tuple[np.ndarray, int] | BaseException | None
"""Samples and how many more of the segment are certain to follow; an error; the segment's end."""


@dataclass
class Segment:
    """One segment's progress; times are `time.monotonic()` readings."""

    index: int
    text: str
    stats: SegmentStats = field(default_factory=SegmentStats)
    audio: asyncio.Queue[_Item] = field(default_factory=asyncio.Queue)
    started_at: float = 0.0
    first_audio_at: float | None = None
    finished_at: float | None = None
    samples: int = 0
    task: asyncio.Task[None] | None = None

    def timing(self, arrived: float) -> speech_pb2.SegmentTiming:
        def since(moment: float | None) -> float:
            return moment - arrived if moment is not None else 0.0

        return speech_pb2.SegmentTiming(
            index=self.index,
            characters=len(self.text),
            started_seconds=since(self.started_at),
            first_token_seconds=since(self.stats.first_token_at),
            first_audio_seconds=since(self.first_audio_at),
            finished_seconds=since(self.finished_at),
            prompt_tokens=self.stats.result.prompt_tokens,
            semantic_tokens=self.stats.result.semantic_tokens,
            samples=self.samples,
            finish_reason=self.stats.result.finish_reason,
        )


class Synthesis:
    def __init__(
        self,
        run_segment: SegmentRunner,
        voice: Voice,
        request: speech_pb2.SynthesizeRequest,
        config: GatewayConfig,
        *,
        time_remaining: Callable[[], float | None] = lambda: None,
    ):
        self.run_segment = run_segment
        self.voice = voice
        self.request = request
        self.config = config
        self.time_remaining = time_remaining
        self.sample_rate = voice.family.sample_rate
        self.samples_per_token = voice.family.samples_per_token
        self.stitcher = Stitcher(round(config.crossfade_ms * self.sample_rate / 1000))
        self.segments: list[Segment] = []
        self.global_ids: tuple[int, ...] | None = voice.parts.global_ids

    def default_max_tokens(self, text: str) -> int:
        """A runaway guard for requests that set no max_tokens, proportional to the segment's text.

        A model that never emits its end token would otherwise speak until the generator's
        limit; slow, careful speech stays well inside this.
        """
        seconds = max(self.config.min_max_seconds, len(text) * self.config.max_seconds_per_char)
        return min(self.config.max_tokens, math.ceil(seconds * self.voice.family.generator_tokens_per_second))

    def generate_request(self, text: str) -> generator_pb2.GenerateRequest:
        request = self.request
        generate = generator_pb2.GenerateRequest(text=text, sampling=request.sampling)
        if not request.sampling.HasField("max_tokens"):
            generate.sampling.max_tokens = self.default_max_tokens(text)
        parts = self.voice.parts
        if parts.chatterbox is not None:
            generate.chatterbox.CopyFrom(parts.chatterbox)
        elif parts.speaker is not None:
            generate.speaker.name = parts.speaker
            generate.speaker.global_ids.extend(self.global_ids or ())
        elif self.global_ids is not None:
            generate.global_tokens.ids.extend(self.global_ids)
            if parts.reference_text is not None and parts.reference_semantic_ids:
                # An enrolled voice's reference leads every segment's prompt.
                generate.global_tokens.reference_text = parts.reference_text
                generate.global_tokens.reference_semantic_ids.extend(parts.reference_semantic_ids)
        elif self.voice.family.voice_from_generator:
            style = request.style if request.HasField("style") else None
            generate.style.CopyFrom(self.voice.style(style))
        # Otherwise the voice is the vocoder's prompt alone (s3): the generator takes text alone.
        return generate

    async def audio(self, texts: AsyncIterator[str]) -> AsyncGenerator[np.ndarray, None]:
        """The stitched audio of the segments `texts` yields, at the voice's sample rate."""
        slots = asyncio.Semaphore(self.config.segments_in_flight)
        started: asyncio.Queue[Segment | None] = asyncio.Queue()
        failure: list[BaseException] = []

        async def plan() -> None:
            try:
                while True:
                    # Wait for a place first, then take the text: streamed text that arrived in
                    # the meantime goes out in one segment.
                    await slots.acquire()
                    if self.segments:
                        # The previous segment's first audio never competes with this one's
                        # prompt: the generator is handed on once it has finished.
                        await self.segments[-1].stats.generated.wait()
                    if self.global_ids is None and self.segments and self.voice.reuses_first_voice:
                        first = self.segments[0].stats
                        await first.voice_known.wait()
                        self.global_ids = first.global_ids
                    if (text := await anext(texts, None)) is None:
                        break
                    started.put_nowait(self._start(text))
                started.put_nowait(None)
            except Exception as exc:  # bad streamed input: end the call now, not after queued audio
                failure.append(exc)
                started.put_nowait(None)
                for segment in self.segments:
                    segment.audio.put_nowait(None)

        planner = asyncio.create_task(plan())
        try:
            while (segment := await started.get()) is not None:
                while (item := await segment.audio.get()) is not None and not failure:
                    if isinstance(item, BaseException):
                        raise item
                    yield self.stitcher.add(*item)
                if failure:
                    break
                segment.finished_at = time.monotonic()
                yield self.stitcher.next_segment()
                slots.release()
            if failure:
                raise failure[0]
            yield self.stitcher.finish()
        finally:
            planner.cancel()
            for segment in self.segments:
                if segment.task is not None:
                    segment.task.cancel()

    def _start(self, text: str) -> Segment:
        segment = Segment(len(self.segments), text, started_at=time.monotonic())
        self.segments.append(segment)
        job = SegmentJob(
            self.generate_request(text),
            self.voice.family,
            self.request.seed,
            segment.stats,
            s3_prompt=self.voice.parts.s3_prompt,
            deadline_seconds=self.time_remaining(),
        )
        segment.task = asyncio.create_task(self._run(segment, job))
        return segment

    async def _run(self, segment: Segment, job: SegmentJob) -> None:
        try:
            async for chunk in self.run_segment(job):
                # A gap, an overlap or a different rate would be audible: never let one through.
                if chunk.sample_offset != segment.samples or chunk.sample_rate != self.sample_rate:
                    raise UpstreamError(
                        "vocoder",
                        grpc.StatusCode.INTERNAL,
                        f"chunk at sample {chunk.sample_offset} and {chunk.sample_rate} Hz; expected "
                        f"sample {segment.samples} at {self.sample_rate} Hz",
                    )
                pcm = f32_from_bytes(chunk.pcm_f32)
                if pcm.size:
                    segment.first_audio_at = segment.first_audio_at or time.monotonic()
                    segment.samples += pcm.size
                    # The tokens already sent to the vocoder will become samples of this segment.
                    coming = segment.stats.tokens_forwarded * self.samples_per_token - segment.samples
                    segment.audio.put_nowait((pcm, 0 if chunk.final else max(0, coming)))
            segment.audio.put_nowait(None)
        except Exception as exc:
            segment.audio.put_nowait(exc)

    def timeline(self, arrived: float) -> list[speech_pb2.SegmentTiming]:
        return [segment.timing(arrived) for segment in self.segments]

    @property
    def first_token_at(self) -> float | None:
        return self.segments[0].stats.first_token_at if self.segments else None

    def totals(self) -> tuple[int, int, generator_pb2.GenerateResult.FinishReason]:
        """Prompt tokens, semantic tokens and the finish reason over all segments."""
        results = [s.stats.result for s in self.segments]
        reasons = {r.finish_reason for r in results}
        finish = FinishReason.LENGTH if FinishReason.LENGTH in reasons else FinishReason.STOP
        return sum(r.prompt_tokens for r in results), sum(r.semantic_tokens for r in results), finish
