"""`CreateVoice`: a voice enrolled from reference audio.

The upload is read and checked here (header, size, transcript), decoded and converted to the
family's encoder rate (`reference_audio`), encoded by a vocoder replica (`Vocoder.EncodeVoice`,
which holds the codec's encoder weights) and stored last: a failed or cancelled upload stores
nothing.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable

import grpc

from voxserve.common.admission import Admission
from voxserve.common.logging import get_logger
from voxserve.common.request_id import outgoing_metadata
from voxserve.common.status import AlreadyExists, FailedPrecondition, InvalidArgument
from voxserve.families.family import Family
from voxserve.families.registry import FAMILIES
from voxserve.gateway.config import GatewayConfig
from voxserve.gateway.pipeline import FAILOVER_CODES, Replicas, UpstreamError
from voxserve.gateway.reference_audio import Reference, ReferenceLimits, read_reference
from voxserve.gateway.segmenter import normalize
from voxserve.gateway.text_input import check_speakable
from voxserve.gateway.voice_directory import VoiceDirectory
from voxserve.gateway.voice_store import StoredVoice
from voxserve.gateway.voices import Voice
from voxserve.v1 import speech_pb2, vocoder_pb2, vocoder_pb2_grpc

log = get_logger(__name__)

VOICE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
VOICE_ID_RULE = "1..64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
# Text a language model prompt would read as markup rather than speech.
MARKUP = re.compile(r"<\||\|>")
MAX_EXAGGERATION = 2.0
TEXT_LIMITS = {"display_name": 200, "description": 1000, "pack": 200, "consent": 2000}


def check_voice_id(voice_id: str) -> None:
    if not VOICE_ID.fullmatch(voice_id):
        shown = voice_id if len(voice_id) <= 64 else voice_id[:64] + "..."
        raise InvalidArgument(f"header.voice_id {shown!r} is not a valid name: {VOICE_ID_RULE}")


class VoiceEnrolment:
    def __init__(
        self,
        directory: VoiceDirectory,
        encoders: Replicas[vocoder_pb2_grpc.VocoderStub],
        config: GatewayConfig,
    ):
        self.directory = directory
        self.encoders = encoders
        self.config = config
        self.limits = ReferenceLimits(config.min_reference_seconds, config.max_reference_seconds)
        # One cap for both front ends: gRPC CreateVoice and HTTP POST /v1/audio/voices.
        self.admission = Admission(config.max_enrolments, "voice enrolments")

    async def create(
        self,
        scope: str,
        requests: AsyncIterator[speech_pb2.CreateVoiceRequest],
        time_remaining: Callable[[], float | None],
    ) -> Voice:
        first = await anext(aiter(requests), None)
        if first is None or first.WhichOneof("message") != "header":
            raise InvalidArgument("header: the first message must be a header")
        header = first.header
        family = self._family(header.family)
        voice_id = header.voice_id or f"voice-{secrets.token_hex(6)}"
        check_voice_id(voice_id)
        transcript = self._transcript(header)
        exaggeration = self._exaggeration(header, family)
        for name, limit in TEXT_LIMITS.items():
            if len(getattr(header, name)) > limit:
                raise InvalidArgument(
                    f"header.{name} has {len(getattr(header, name))} characters; the limit is {limit}"
                )
        # Refuse what the store would refuse before the upload is read and encoded.
        if await self.directory.find(scope, voice_id) is not None:
            raise AlreadyExists(f"header.voice_id {voice_id!r} already exists")
        await self.directory.check_room(scope, self.config.max_voices_per_key)
        data = await self._upload(requests)
        enrolment = family.enrolment
        assert enrolment is not None  # _family refuses families without one
        # ReferenceAudioError is an InvalidArgument: it ends the call as such.
        reference = await asyncio.to_thread(
            read_reference, data, header.format, header.sample_rate, enrolment, self.limits
        )
        started = time.monotonic()
        wants_tokens = transcript is not None and enrolment.transcript_tokens
        encoded = await self._encode(family, reference, wants_tokens, time_remaining)
        if exaggeration is not None and encoded.HasField("chatterbox"):
            encoded.chatterbox.exaggeration = exaggeration
        record = StoredVoice(
            owner=scope,
            id=voice_id,
            family=family.name,
            display_name=header.display_name,
            description=header.description,
            pack=header.pack,
            transcript=transcript,
            consent=header.consent,
            encoding=encoded.SerializeToString(),
            reference_seconds=reference.seconds,
            created_at=time.time(),
        )
        voice = await self.directory.add(record, max_per_scope=self.config.max_voices_per_key)
        log.info(
            "voice enrolled",
            voice=voice_id,
            family=family.name,
            reference_seconds=round(reference.seconds, 3),
            encode_seconds=round(time.monotonic() - started, 3),
            transcript=transcript is not None,
        )
        return voice

    def _family(self, name: str) -> Family:
        family = FAMILIES.get(name) if name else self.directory.registry.default.family
        if family is None:
            raise InvalidArgument(f"header.family {name[:64]!r} is unknown; families: {', '.join(FAMILIES)}")
        if family.enrolment is None:
            raise FailedPrecondition(
                f"header.family {family.name!r}: its voices cannot be enrolled from reference audio"
            )
        return family

    def _exaggeration(self, header: speech_pb2.VoiceHeader, family: Family) -> float | None:
        """The voice's default exaggeration, for families whose requests take one."""
        if not header.HasField("exaggeration"):
            return None
        if "exaggeration" not in family.sampling_fields:
            raise InvalidArgument(f"header.exaggeration: {family.name} voices take none")
        if not 0.0 <= header.exaggeration <= MAX_EXAGGERATION:
            raise InvalidArgument(
                f"header.exaggeration is {header.exaggeration:g}; it must be in 0 .. {MAX_EXAGGERATION:g}"
            )
        return header.exaggeration

    def _transcript(self, header: speech_pb2.VoiceHeader) -> str | None:
        if not header.HasField("transcript"):
            return None
        text = normalize(header.transcript)
        limit = self.config.max_transcript_chars
        if not text:
            raise InvalidArgument(f"header.transcript is empty; omit it or give 1..{limit} characters")
        if len(text) > limit:
            raise InvalidArgument(f"header.transcript has {len(text)} characters; the limit is {limit}")
        if MARKUP.search(text):
            raise InvalidArgument(
                "header.transcript holds special-token markup ('<|' or '|>'); give plain text"
            )
        try:
            check_speakable(text)
        except InvalidArgument as exc:
            raise InvalidArgument(f"header.transcript: {exc}") from exc
        return text

    async def _upload(self, requests: AsyncIterator[speech_pb2.CreateVoiceRequest]) -> bytes:
        limit = self.config.max_voice_upload_bytes
        chunks: list[bytes] = []
        size = 0
        async for request in requests:
            if request.WhichOneof("message") != "audio":
                raise InvalidArgument("header: a second header; the header is sent once, first")
            size += len(request.audio)
            if size > limit:
                raise InvalidArgument(f"audio: the upload exceeds the limit of {limit} bytes")
            chunks.append(request.audio)
        if not size:
            raise InvalidArgument("audio: no audio bytes followed the header")
        return b"".join(chunks)

    async def _encode(
        self,
        family: Family,
        reference: Reference,
        reference_tokens: bool,
        time_remaining: Callable[[], float | None],
    ) -> vocoder_pb2.EncodedVoice:
        """EncodeVoice on a vocoder replica; one that went away is replaced by the next."""
        request = vocoder_pb2.EncodeVoiceRequest(
            codec=family.codec,
            pcm_f32=reference.samples.astype("<f4").tobytes(),
            sample_rate=reference.sample_rate,
            reference_tokens=reference_tokens,
        )
        stub = None
        for attempt in range(len(self.encoders)):
            stub = self.encoders.pick(avoid=stub)
            try:
                return await stub.EncodeVoice(request, metadata=outgoing_metadata(), timeout=time_remaining())
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in FAILOVER_CODES or attempt == len(self.encoders) - 1:
                    raise UpstreamError("vocoder", exc.code(), exc.details() or "") from exc
                log.warning("vocoder replica failed to encode; trying another", code=exc.code().name)
        raise AssertionError("unreachable")
