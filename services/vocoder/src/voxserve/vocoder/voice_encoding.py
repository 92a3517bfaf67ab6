"""`Vocoder.EncodeVoice`: a reference recording's voice conditioning, from the codec's encoder.

Encoding runs in a worker thread so that the event loop keeps feeding decode streams; a cap on
concurrent encodes keeps enrolments from crowding out decoding on the same device.
"""

from __future__ import annotations

import asyncio

import numpy as np

from voxserve.common.admission import Admission
from voxserve.common.logging import get_logger
from voxserve.common.status import FailedPrecondition, InvalidArgument
from voxserve.v1 import vocoder_pb2
from voxserve.vocoder.codecs.base import Codec, CodecInputError, EncodedVoice, EncoderUnavailable

log = get_logger(__name__)


class VoiceEncoding:
    def __init__(self, codec: Codec, *, max_encodes: int, max_seconds: float):
        self.codec = codec
        self.admission = Admission(max_encodes, "voice encodes")
        self.max_seconds = max_seconds

    def _audio(self, request: vocoder_pb2.EncodeVoiceRequest) -> np.ndarray:
        if request.codec != self.codec.name:
            raise FailedPrecondition(
                f"codec {request.codec[:64]!r} is not served here: this vocoder's pack has codec "
                f"{self.codec.name!r}"
            )
        if request.sample_rate <= 0:
            raise InvalidArgument(f"sample_rate is {request.sample_rate}; it must be > 0")
        data = request.pcm_f32
        if len(data) % 4:
            raise InvalidArgument(f"pcm_f32 has {len(data)} bytes: not whole float32 values")
        audio = np.frombuffer(data, dtype="<f4")
        seconds = audio.size / request.sample_rate
        if not 0 < seconds <= self.max_seconds:
            raise InvalidArgument(
                f"pcm_f32 holds {seconds:.2f} s of audio; it must hold more than 0 and at most "
                f"{self.max_seconds:g} s"
            )
        if not np.isfinite(audio).all():
            raise InvalidArgument("pcm_f32 holds non-finite samples")
        return audio

    async def encode(self, request: vocoder_pb2.EncodeVoiceRequest) -> vocoder_pb2.EncodedVoice:
        audio = self._audio(request)
        with self.admission.enter():
            try:
                encoded = await asyncio.to_thread(
                    self.codec.encode_voice, audio, request.sample_rate, request.reference_tokens
                )
            except EncoderUnavailable as exc:
                raise FailedPrecondition(str(exc)) from exc
            except CodecInputError as exc:
                raise InvalidArgument(str(exc)) from exc
        log.info(
            "voice encoded",
            seconds=round(audio.size / request.sample_rate, 3),
            reference_tokens=len(encoded.reference_semantic_ids),
        )
        return encoded_voice_proto(encoded)


def encoded_voice_proto(encoded: EncodedVoice) -> vocoder_pb2.EncodedVoice:
    message = vocoder_pb2.EncodedVoice(
        global_ids=encoded.global_ids, reference_semantic_ids=encoded.reference_semantic_ids
    )
    if (prompt := encoded.s3_prompt) is not None:
        assert prompt.prompt_mel is not None
        message.s3_prompt.prompt_tokens.extend(prompt.prompt_tokens)
        message.s3_prompt.prompt_mel_f32 = np.ascontiguousarray(prompt.prompt_mel, dtype="<f4").tobytes()
        message.s3_prompt.xvector.extend(prompt.xvector)
    if encoded.speaker_embedding:
        message.chatterbox.speaker_embedding.extend(encoded.speaker_embedding)
        message.chatterbox.prompt_tokens.extend(encoded.t3_prompt_tokens)
    return message
