"""`voxserve.v1.Speech`: the public API."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

import grpc

from voxserve.common.audio import f32_from_bytes, pcm16_from_f32
from voxserve.common.logging import get_logger
from voxserve.common.request_id import current_request_id
from voxserve.common.status import InvalidArgument
from voxserve.gateway import metrics
from voxserve.gateway.config import GatewayConfig
from voxserve.gateway.pipeline import CODEC_OF_FAMILY, SegmentRunner, SegmentStats, UpstreamError
from voxserve.gateway.voices import TOKENS_PER_SECOND, Voice, VoiceRegistry
from voxserve.v1 import generator_pb2, speech_pb2, speech_pb2_grpc

log = get_logger(__name__)

_ENCODINGS = (speech_pb2.AUDIO_ENCODING_UNSPECIFIED, speech_pb2.PCM16)


class SpeechServicer(speech_pb2_grpc.SpeechServicer):
    def __init__(
        self,
        voices: VoiceRegistry,
        run_segment: SegmentRunner,
        config: GatewayConfig,
    ):
        self.voices = voices
        self.run_segment = run_segment
        self.config = config

    def default_max_tokens(self, text: str, family: str) -> int:
        """A runaway guard for requests that set no max_tokens, proportional to the text.

        A model that never emits its end token would otherwise speak until the generator's
        limit; slow, careful speech stays well inside this.
        """
        seconds = max(self.config.min_max_seconds, len(text) * self.config.max_seconds_per_char)
        return min(self.config.max_tokens, math.ceil(seconds * TOKENS_PER_SECOND[family]))

    async def ListVoices(
        self, request: speech_pb2.ListVoicesRequest, context: grpc.aio.ServicerContext
    ) -> speech_pb2.ListVoicesResponse:
        return speech_pb2.ListVoicesResponse(voices=[v.to_proto() for v in self.voices])

    def _generate_request(
        self, request: speech_pb2.SynthesizeRequest
    ) -> tuple[generator_pb2.GenerateRequest, Voice]:
        text = request.text.strip()
        if not text:
            raise InvalidArgument("text is empty")
        limit = self.config.max_text_chars
        if len(text) > limit:
            raise InvalidArgument(f"text has {len(text)} characters; the limit is {limit}")
        voice = self.voices.get(request.voice)
        if voice is None:
            raise InvalidArgument(
                f"voice {request.voice!r} is unknown; known voices: {', '.join(self.voices.ids)}"
            )
        if request.encoding not in _ENCODINGS:
            raise InvalidArgument(f"encoding {request.encoding} is not supported; supported: PCM16")
        generate = generator_pb2.GenerateRequest(text=text, sampling=request.sampling)
        if not request.sampling.HasField("max_tokens"):
            generate.sampling.max_tokens = self.default_max_tokens(text, voice.family)
        if voice.family == "s3":
            pass  # the voice is the vocoder's prompt; the generator takes text alone
        elif voice.global_ids is not None:
            generate.global_tokens.ids.extend(voice.global_ids)
        else:
            generate.style.CopyFrom(voice.style(request.style if request.HasField("style") else None))
        return generate, voice

    async def Synthesize(
        self, request: speech_pb2.SynthesizeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[speech_pb2.SynthesizeResponse]:
        arrived = time.monotonic()
        try:
            generate, voice = self._generate_request(request)
        except InvalidArgument as exc:
            metrics.REQUESTS.labels("invalid").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        metrics.ACTIVE_REQUESTS.inc()
        outcome = "cancelled"
        stats = SegmentStats()
        samples, sample_rate, first_audio = 0, 0, None
        try:
            async for chunk in self.run_segment(
                generate,
                codec=CODEC_OF_FAMILY[voice.family],
                seed=request.seed,
                stats=stats,
                deadline_seconds=context.time_remaining(),
                s3_prompt=voice.s3_prompt,
            ):
                if chunk.sample_offset != samples:  # a gap or overlap would be audible: never let it through
                    raise UpstreamError(
                        "vocoder",
                        grpc.StatusCode.INTERNAL,
                        f"chunk at sample {chunk.sample_offset}, expected {samples}",
                    )
                pcm = f32_from_bytes(chunk.pcm_f32)
                sample_rate = chunk.sample_rate
                if pcm.size:
                    if first_audio is None:
                        first_audio = time.monotonic() - arrived
                        metrics.FIRST_AUDIO_SECONDS.observe(first_audio)
                    audio = speech_pb2.AudioData(
                        data=pcm16_from_f32(pcm), sample_rate=sample_rate, sample_offset=samples
                    )
                    yield speech_pb2.SynthesizeResponse(audio=audio)
                    samples += pcm.size
        except UpstreamError as exc:
            outcome = "upstream_error"
            log.warning("upstream call failed", service=exc.service, code=exc.code.name, details=exc.details)
            await context.abort(exc.code, str(exc))
        else:
            outcome = "completed"
            total = time.monotonic() - arrived
            audio_seconds = samples / sample_rate if sample_rate else 0.0
            metrics.AUDIO_SECONDS.inc(audio_seconds)
            summary = speech_pb2.Summary(
                first_audio_seconds=first_audio or 0.0,
                audio_seconds=audio_seconds,
                real_time_factor=total / audio_seconds if audio_seconds else 0.0,
                total_seconds=total,
                prompt_tokens=stats.result.prompt_tokens,
                semantic_tokens=stats.result.semantic_tokens,
                samples=samples,
                finish_reason=stats.result.finish_reason,
                request_id=current_request_id(),
                first_token_seconds=(stats.first_token_at - arrived) if stats.first_token_at else 0.0,
            )
            log.info(
                "synthesized",
                first_audio_seconds=round(summary.first_audio_seconds, 4),
                audio_seconds=round(audio_seconds, 3),
                rtf=round(summary.real_time_factor, 4),
                semantic_tokens=summary.semantic_tokens,
            )
            yield speech_pb2.SynthesizeResponse(summary=summary)
        finally:
            metrics.ACTIVE_REQUESTS.dec()
            metrics.REQUESTS.labels(outcome).inc()
