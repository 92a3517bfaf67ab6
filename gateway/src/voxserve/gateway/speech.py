"""The synthesis core both front ends share: text and voice checks, admission, the stitched
audio of one request encoded as its output asks, and the summary that ends it.

The gRPC servicer and the HTTP API differ only in how they read a request and how they frame
what this yields; limits, voices and timings are the same for both.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from voxserve.common.admission import Admission
from voxserve.common.logging import get_logger
from voxserve.common.request_id import current_request_id
from voxserve.common.status import InvalidArgument
from voxserve.gateway import metrics
from voxserve.gateway.config import GatewayConfig
from voxserve.gateway.pipeline import SegmentRunner, UpstreamError
from voxserve.gateway.segmenter import normalize, split_text
from voxserve.gateway.synthesis import Synthesis
from voxserve.gateway.text_input import check_speakable
from voxserve.gateway.voice_directory import VoiceDirectory
from voxserve.gateway.voices import Voice
from voxserve.v1 import speech_pb2

log = get_logger(__name__)


class AudioOutput(Protocol):
    """Where a request's audio goes: resampled and encoded as the client asked."""

    sample_rate: int
    samples: int  # at `sample_rate`, handed to the encoder so far

    def write(self, pcm_f32: npt.NDArray[np.float32]) -> bytes: ...
    def finish(self) -> bytes: ...


@dataclass(frozen=True)
class AudioPiece:
    """Encoded audio ready to send; `offset` is its first sample at the output rate."""

    data: bytes
    offset: int


class SpeechCore:
    def __init__(self, voices: VoiceDirectory, run_segment: SegmentRunner, config: GatewayConfig):
        self.voices = voices
        self.run_segment = run_segment
        self.config = config
        self.admission = Admission(config.max_streams, "speech calls")

    async def voice(self, scope: str, voice_id: str, field: str = "voice") -> Voice:
        voice = await self.voices.find(scope, voice_id)
        if voice is None:
            known = ", ".join(self.voices.registry.ids)
            raise InvalidArgument(
                f"{field} {voice_id[:64]!r} is unknown; built-in voices: {known} (the voice list "
                "shows the voices stored by this API key too)"
            )
        return voice

    def text(self, text: str, field: str = "text") -> str:
        """The request's text, normalised and checked against the gateway's limit."""
        text = normalize(text)
        if not text:
            raise InvalidArgument(f"{field} is empty")
        limit = self.config.max_text_chars
        if len(text) > limit:
            raise InvalidArgument(f"{field} has {len(text)} characters; the limit is {limit}")
        check_speakable(text)
        return text

    async def segments(self, text: str) -> AsyncIterator[str]:
        for segment in split_text(text, self.config.segment_max_chars):
            yield segment

    def synthesis(
        self,
        voice: Voice,
        request: speech_pb2.SynthesizeRequest,
        time_remaining: Callable[[], float | None] = lambda: None,
    ) -> Synthesis:
        return Synthesis(self.run_segment, voice, request, self.config, time_remaining=time_remaining)

    async def stream(
        self,
        synthesis: Synthesis,
        texts: AsyncIterator[str],
        output: AudioOutput,
        arrived: float,
        check: Callable[[], None] = lambda: None,
    ) -> AsyncGenerator[AudioPiece | speech_pb2.Summary, None]:
        """Audio pieces, then the summary. Raises what ends the call: Overloaded when the
        service holds its maximum of calls, an UpstreamError to relay, bad streamed input."""
        with self.admission.enter():
            received_unix = time.time() - (time.monotonic() - arrived)
            metrics.ACTIVE_REQUESTS.inc()
            first_audio: float | None = None
            try:
                async with contextlib.aclosing(synthesis.audio(texts)) as stitched:
                    async for pcm in stitched:
                        check()
                        offset = output.samples
                        data = output.write(pcm)
                        if data:
                            if first_audio is None:
                                first_audio = time.monotonic() - arrived
                                metrics.FIRST_AUDIO_SECONDS.observe(first_audio)
                            yield AudioPiece(data, offset)
                check()
                offset = output.samples
                data = output.finish()
                if data:
                    yield AudioPiece(data, offset)
                yield self._summary(synthesis, output, arrived, received_unix, first_audio)
            except UpstreamError as exc:
                log.warning(
                    "upstream call failed", service=exc.service, code=exc.status.name, details=exc.details
                )
                raise
            finally:
                metrics.ACTIVE_REQUESTS.dec()

    def _summary(
        self,
        synthesis: Synthesis,
        output: AudioOutput,
        arrived: float,
        received_unix: float,
        first_audio: float | None,
    ) -> speech_pb2.Summary:
        total = time.monotonic() - arrived
        audio_seconds = output.samples / output.sample_rate
        metrics.AUDIO_SECONDS.inc(audio_seconds)
        prompt_tokens, semantic_tokens, finish_reason = synthesis.totals()
        first_token = synthesis.first_token_at - arrived if synthesis.first_token_at else 0.0
        timeline = speech_pb2.Timeline(
            received_unix_seconds=received_unix,
            first_token_seconds=first_token,
            first_audio_seconds=first_audio or 0.0,
            segments=synthesis.timeline(arrived),
            done_seconds=total,
        )
        summary = speech_pb2.Summary(
            first_audio_seconds=first_audio or 0.0,
            audio_seconds=audio_seconds,
            real_time_factor=total / audio_seconds if audio_seconds else 0.0,
            total_seconds=total,
            prompt_tokens=prompt_tokens,
            semantic_tokens=semantic_tokens,
            samples=output.samples,
            finish_reason=finish_reason,
            request_id=current_request_id(),
            first_token_seconds=first_token,
            segments=len(synthesis.segments),
            timeline=timeline,
        )
        log.info(
            "synthesized",
            first_audio_seconds=round(summary.first_audio_seconds, 4),
            audio_seconds=round(audio_seconds, 3),
            rtf=round(summary.real_time_factor, 4),
            semantic_tokens=semantic_tokens,
            segments=summary.segments,
        )
        return summary
