"""`voxserve.v1.Speech`: the public API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import grpc

from voxserve.common.logging import get_logger
from voxserve.common.status import FailedPrecondition, InvalidArgument, NotFound, Outcome, call_outcome
from voxserve.gateway import metrics
from voxserve.gateway.caller import caller_scope
from voxserve.gateway.config import GatewayConfig
from voxserve.gateway.enrolment import VoiceEnrolment
from voxserve.gateway.formats import OutputStream
from voxserve.gateway.pipeline import SegmentRunner
from voxserve.gateway.speech import AudioPiece, SpeechCore
from voxserve.gateway.synthesis import Synthesis
from voxserve.gateway.text_input import TextInput
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
        core: SpeechCore | None = None,
    ):
        self.voices = voices
        self.run_segment = run_segment
        self.config = config
        self.enrolment = enrolment
        self.keyed = keyed
        """API keys are configured: stored voices belong to the key that created them."""
        self.core = core or SpeechCore(voices, run_segment, config)

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
            with self.enrolment.admission.enter():
                voice = await self.enrolment.create(
                    caller_scope(context, self.keyed), request_iterator, context.time_remaining
                )
            outcome.value = "completed"
            return voice.to_proto()

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
            text = self.core.text(request.text)
            voice = await self.core.voice(caller_scope(context, self.keyed), request.voice)
            output = self._output(request, voice)
            synthesis = self.core.synthesis(voice, request, context.time_remaining)
            async for response in self._respond(
                synthesis, self.core.segments(text), output, outcome, arrived
            ):
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
            voice = await self.core.voice(caller_scope(context, self.keyed), request.voice)
            output = self._output(request, voice)
            text_input = TextInput(
                request_iterator,
                first_text=request.text,
                max_chars=self.config.max_stream_text_chars,
                segment_max_chars=self.config.segment_max_chars,
            )
            synthesis = self.core.synthesis(voice, request, context.time_remaining)
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
        async for item in self.core.stream(synthesis, texts, output, arrived, check):
            if isinstance(item, AudioPiece):
                audio = speech_pb2.AudioData(
                    data=item.data, sample_rate=output.sample_rate, sample_offset=item.offset
                )
                yield speech_pb2.SynthesizeResponse(audio=audio)
            else:
                outcome.value = "completed"
                yield speech_pb2.SynthesizeResponse(summary=item)
