"""`voxserve.v1.Speech`: the public API."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable

import grpc

from voxserve.common.admission import Admission
from voxserve.common.logging import get_logger
from voxserve.common.request_id import current_request_id
from voxserve.common.status import FailedPrecondition, InvalidArgument, NotFound, Outcome, call_outcome
from voxserve.gateway import metrics
from voxserve.gateway.caller import caller_scope
from voxserve.gateway.config import GatewayConfig
from voxserve.gateway.enrolment import VoiceEnrolment
from voxserve.gateway.formats import OutputStream
from voxserve.gateway.pipeline import SegmentRunner, UpstreamError
from voxserve.gateway.segmenter import normalize, split_text
from voxserve.gateway.synthesis import Synthesis
from voxserve.gateway.text_input import TextInput, check_speakable
from voxserve.gateway.voice_directory import VoiceDirectory
from voxserve.gateway.voices import Voice
from voxserve.v1 import speech_pb2, speech_pb2_grpc

log = get_logger(__name__)


class SpeechServicer(speech_pb2_grpc.SpeechServicer):
    def __init__(
        self,
        voices: VoiceDirectory,
        run_segment: SegmentRunner,
        config: GatewayConfig,
        *,
        enrolment: VoiceEnrolment | None = None,
        keyed: bool = False,
    ):
        self.voices = voices
        self.run_segment = run_segment
        self.config = config
        self.enrolment = enrolment
        self.keyed = keyed
        """API keys are configured: stored voices belong to the key that created them."""
        self.admission = Admission(config.max_streams, "speech calls")
        self.enrolments = Admission(config.max_enrolments, "voice enrolments")

    async def ListVoices(
        self, request: speech_pb2.ListVoicesRequest, context: grpc.aio.ServicerContext
    ) -> speech_pb2.ListVoicesResponse:
        async with call_outcome(context) as outcome:
            voices = await self.voices.voices(caller_scope(context, self.keyed))
            outcome.value = "completed"
            return speech_pb2.ListVoicesResponse(voices=[v.to_proto() for v in voices])

    async def GetVoice(
        self, request: speech_pb2.GetVoiceRequest, context: grpc.aio.ServicerContext
    ) -> speech_pb2.Voice:
        async with call_outcome(context) as outcome:
            if not request.voice_id:
                raise InvalidArgument("voice_id is empty")
            voice = await self.voices.find(caller_scope(context, self.keyed), request.voice_id)
            if voice is None:
                raise NotFound(f"voice_id {request.voice_id[:64]!r} is not a voice of this API key")
            outcome.value = "completed"
            return voice.to_proto(conditioning=request.include_conditioning)

    async def DeleteVoice(
        self, request: speech_pb2.DeleteVoiceRequest, context: grpc.aio.ServicerContext
    ) -> speech_pb2.DeleteVoiceResponse:
        async with call_outcome(context) as outcome:
            if not request.voice_id:
                raise InvalidArgument("voice_id is empty")
            if not await self.voices.remove(caller_scope(context, self.keyed), request.voice_id):
                raise NotFound(f"voice_id {request.voice_id[:64]!r} is not a stored voice of this API key")
            log.info("voice deleted", voice=request.voice_id)
            outcome.value = "completed"
            return speech_pb2.DeleteVoiceResponse()

    async def CreateVoice(
        self,
        request_iterator: AsyncIterator[speech_pb2.CreateVoiceRequest],
        context: grpc.aio.ServicerContext,
    ) -> speech_pb2.Voice:
        async with call_outcome(context, metrics.ENROLMENTS) as outcome:
            if self.enrolment is None:
                raise FailedPrecondition("this gateway has no voice store: voices cannot be enrolled")
            with self.enrolments.enter():
                voice = await self.enrolment.create(
                    caller_scope(context, self.keyed), request_iterator, context.time_remaining
                )
            outcome.value = "completed"
            return voice.to_proto()

    async def _voice(self, request: speech_pb2.SynthesizeRequest, context: grpc.aio.ServicerContext) -> Voice:
        voice = await self.voices.find(caller_scope(context, self.keyed), request.voice)
        if voice is None:
            known = ", ".join(self.voices.registry.ids)
            raise InvalidArgument(
                f"voice {request.voice[:64]!r} is unknown; built-in voices: {known} (ListVoices lists "
                "the voices stored by this API key too)"
            )
        return voice

    def _output(self, request: speech_pb2.SynthesizeRequest, voice: Voice) -> OutputStream:
        return OutputStream(
            request.encoding,
            voice.family.sample_rate,
            request.sample_rate,
            opus_bitrate=self.config.opus_bitrate,
        )

    async def Synthesize(
        self, request: speech_pb2.SynthesizeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[speech_pb2.SynthesizeResponse]:
        arrived = time.monotonic()
        async with call_outcome(context, metrics.REQUESTS) as outcome:
            text = normalize(request.text)
            if not text:
                raise InvalidArgument("text is empty")
            limit = self.config.max_text_chars
            if len(text) > limit:
                raise InvalidArgument(f"text has {len(text)} characters; the limit is {limit}")
            check_speakable(text)
            voice = await self._voice(request, context)
            output = self._output(request, voice)
            segments = split_text(text, self.config.segment_max_chars)

            async def texts() -> AsyncIterator[str]:
                for segment in segments:
                    yield segment

            synthesis = Synthesis(
                self.run_segment, voice, request, self.config, time_remaining=context.time_remaining
            )
            async for response in self._respond(synthesis, texts(), output, outcome, arrived):
                yield response

    async def SynthesizeStream(
        self,
        request_iterator: AsyncIterator[speech_pb2.SynthesizeStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[speech_pb2.SynthesizeResponse]:
        arrived = time.monotonic()
        async with call_outcome(context, metrics.REQUESTS) as outcome:
            first = await anext(aiter(request_iterator), None)
            if first is None or first.WhichOneof("message") != "config":
                raise InvalidArgument("config: the first message must be a config")
            request = first.config
            voice = await self._voice(request, context)
            output = self._output(request, voice)
            text_input = TextInput(
                request_iterator,
                first_text=request.text,
                max_chars=self.config.max_stream_text_chars,
                segment_max_chars=self.config.segment_max_chars,
            )
            synthesis = Synthesis(
                self.run_segment, voice, request, self.config, time_remaining=context.time_remaining
            )
            try:
                async for response in self._respond(
                    synthesis, text_input.texts(), output, outcome, arrived, check=text_input.check
                ):
                    yield response
            finally:
                text_input.close()

    async def _respond(
        self,
        synthesis: Synthesis,
        texts: AsyncIterator[str],
        output: OutputStream,
        outcome: Outcome,
        arrived: float,
        check: Callable[[], None] = lambda: None,
    ) -> AsyncIterator[speech_pb2.SynthesizeResponse]:
        """Audio messages, then the summary. Raises what ends the call: Overloaded when the
        service holds its maximum of calls, an UpstreamError to relay, bad streamed input."""
        with self.admission.enter():
            received_unix = time.time() - (time.monotonic() - arrived)
            metrics.ACTIVE_REQUESTS.inc()
            first_audio: float | None = None

            def audio(data: bytes, offset: int) -> speech_pb2.SynthesizeResponse:
                return speech_pb2.SynthesizeResponse(
                    audio=speech_pb2.AudioData(
                        data=data, sample_rate=output.sample_rate, sample_offset=offset
                    )
                )

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
                            yield audio(data, offset)
                check()
                offset = output.samples
                data = output.finish()
                if data:
                    yield audio(data, offset)
                outcome.value = "completed"
                yield speech_pb2.SynthesizeResponse(
                    summary=self._summary(synthesis, output, arrived, received_unix, first_audio)
                )
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
        output: OutputStream,
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
