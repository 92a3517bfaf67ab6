"""A Speech API client: what `voxserve say`, `voxserve voices`, the demo and the tests use to
synthesize and to manage voices."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from voxserve.common.request_id import METADATA_KEY, new_request_id
from voxserve.v1 import generator_pb2, speech_pb2, speech_pb2_grpc


@dataclass
class Synthesis:
    data: bytes
    """The audio messages' bytes joined: one file or stream in the requested encoding."""
    sample_rate: int
    first_audio_seconds: float
    """Measured by the client: request sent -> first audio byte received."""
    total_seconds: float
    summary: speech_pb2.Summary
    chunk_offsets: list[int]
    encoding: speech_pb2.AudioEncoding = speech_pb2.PCM16

    @property
    def pcm16(self) -> bytes:
        if not self._is_pcm16:
            raise ValueError("pcm16 is only defined for PCM16 output; decode `data` instead")
        return self.data

    @property
    def samples(self) -> int:
        """Samples received: counted from the bytes for PCM16, else as the summary reports them."""
        return len(self.pcm16) // 2 if self._is_pcm16 else self.summary.samples

    @property
    def _is_pcm16(self) -> bool:
        return self.encoding in (speech_pb2.PCM16, speech_pb2.AUDIO_ENCODING_UNSPECIFIED)

    @property
    def audio_seconds(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    @property
    def real_time_factor(self) -> float:
        return self.total_seconds / self.audio_seconds if self.audio_seconds else 0.0


@dataclass(frozen=True)
class ClientSecurity:
    """How to reach a secured gateway: its CA (TLS) and an API key (bearer token)."""

    api_key: str | None = None
    ca_file: Path | None = None

    def channel(self, address: str) -> grpc.Channel:
        if self.ca_file is None:
            return grpc.insecure_channel(address)
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(Path(self.ca_file).read_bytes()))

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.api_key}"),) if self.api_key else ()


def synthesize(
    address: str,
    text: str,
    *,
    voice: str = "default",
    style: generator_pb2.VoiceStyle | None = None,
    sampling: generator_pb2.SamplingParams | None = None,
    seed: int = 0,
    encoding: speech_pb2.AudioEncoding = speech_pb2.PCM16,
    sample_rate: int = 0,
    timeout: float | None = 300.0,
    metadata: Sequence[tuple[str, str]] = (),
    security: ClientSecurity | None = None,
) -> Synthesis:
    request = speech_pb2.SynthesizeRequest(
        text=text, voice=voice, sampling=sampling, seed=seed, encoding=encoding, sample_rate=sample_rate
    )
    if style is not None:
        request.style.CopyFrom(style)
    return _collect(
        address, lambda stub, **kw: stub.Synthesize(request, **kw), encoding, timeout, metadata, security
    )


FLUSH = object()
"""A delta for `synthesize_stream`: ask the gateway to speak what it has so far."""


def synthesize_stream(
    address: str,
    deltas: Iterable[str | object],
    *,
    voice: str = "default",
    sampling: generator_pb2.SamplingParams | None = None,
    seed: int = 0,
    encoding: speech_pb2.AudioEncoding = speech_pb2.PCM16,
    sample_rate: int = 0,
    delay_seconds: float = 0.0,
    timeout: float | None = 300.0,
    metadata: Sequence[tuple[str, str]] = (),
    security: ClientSecurity | None = None,
) -> Synthesis:
    """SynthesizeStream: sends `deltas` (text or FLUSH) `delay_seconds` apart, then end of input."""
    config = speech_pb2.SynthesizeRequest(
        voice=voice, sampling=sampling, seed=seed, encoding=encoding, sample_rate=sample_rate
    )

    def requests() -> Iterator[speech_pb2.SynthesizeStreamRequest]:
        yield speech_pb2.SynthesizeStreamRequest(config=config)
        for delta in deltas:
            time.sleep(delay_seconds)
            if delta is FLUSH:
                yield speech_pb2.SynthesizeStreamRequest(flush=speech_pb2.Flush())
            else:
                yield speech_pb2.SynthesizeStreamRequest(text=str(delta))
        yield speech_pb2.SynthesizeStreamRequest(end=speech_pb2.EndOfInput())

    return _collect(
        address,
        lambda stub, **kw: stub.SynthesizeStream(requests(), **kw),
        encoding,
        timeout,
        metadata,
        security,
    )


def _collect(
    address: str,
    call: Callable[..., Iterator[speech_pb2.SynthesizeResponse]],
    encoding: speech_pb2.AudioEncoding,
    timeout: float | None,
    metadata: Sequence[tuple[str, str]],
    security: ClientSecurity | None = None,
) -> Synthesis:
    """Runs `call(stub, timeout=, metadata=)` and gathers its audio and summary."""
    security = security or ClientSecurity()
    metadata = _call_metadata(metadata, security)
    with security.channel(address) as channel:
        stub = speech_pb2_grpc.SpeechStub(channel)
        started = time.perf_counter()
        first_audio: float | None = None
        parts: list[bytes] = []
        offsets: list[int] = []
        sample_rate = 0
        summary = speech_pb2.Summary()
        for response in call(stub, timeout=timeout, metadata=metadata):
            if response.HasField("audio"):
                if first_audio is None:
                    first_audio = time.perf_counter() - started
                parts.append(response.audio.data)
                offsets.append(response.audio.sample_offset)
                sample_rate = response.audio.sample_rate
            else:
                summary = response.summary
        total = time.perf_counter() - started
    return Synthesis(b"".join(parts), sample_rate, first_audio or 0.0, total, summary, offsets, encoding)


def _call_metadata(
    metadata: Sequence[tuple[str, str]], security: ClientSecurity
) -> tuple[tuple[str, str], ...]:
    """The caller's metadata (else a fresh request id) and the API key."""
    return (*(tuple(metadata) or ((METADATA_KEY, new_request_id()),)), *security.metadata())


CHUNK_BYTES = 64 * 1024


def voice_requests(
    header: speech_pb2.VoiceHeader, audio: bytes, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[speech_pb2.CreateVoiceRequest]:
    """CreateVoice's request stream: the header, then the audio in chunks of `chunk_bytes`."""
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes is {chunk_bytes}; it must be at least 1")
    yield speech_pb2.CreateVoiceRequest(header=header)
    for start in range(0, len(audio), chunk_bytes):
        yield speech_pb2.CreateVoiceRequest(audio=audio[start : start + chunk_bytes])


def create_voice(
    address: str,
    voice_id: str,
    audio: bytes | str | os.PathLike[str],
    *,
    transcript: str | None = None,
    exaggeration: float | None = None,
    display_name: str = "",
    description: str = "",
    family: str = "",
    pack: str = "",
    consent: str = "",
    pcm16_sample_rate: int = 0,
    chunk_bytes: int = CHUNK_BYTES,
    timeout: float | None = 120.0,
    metadata: Sequence[tuple[str, str]] = (),
    security: ClientSecurity | None = None,
) -> speech_pb2.Voice:
    """Enrols a voice from reference audio: the bytes of a WAV, FLAC, Ogg or MP3 file (or a path
    to one), or raw PCM16 mono when `pcm16_sample_rate` is set. An empty `voice_id` lets the
    gateway choose one; the returned Voice says which."""
    data = audio if isinstance(audio, bytes) else Path(audio).read_bytes()
    header = speech_pb2.VoiceHeader(
        voice_id=voice_id,
        display_name=display_name,
        description=description,
        family=family,
        pack=pack,
        consent=consent,
        format=speech_pb2.REFERENCE_FORMAT_PCM16 if pcm16_sample_rate else speech_pb2.REFERENCE_FORMAT_FILE,
        sample_rate=pcm16_sample_rate,
    )
    if transcript is not None:
        header.transcript = transcript
    if exaggeration is not None:
        header.exaggeration = exaggeration
    security = security or ClientSecurity()
    with security.channel(address) as channel:
        return speech_pb2_grpc.SpeechStub(channel).CreateVoice(
            voice_requests(header, data, chunk_bytes),
            timeout=timeout,
            metadata=_call_metadata(metadata, security),
        )


def get_voice(
    address: str,
    voice_id: str,
    *,
    conditioning: bool = False,
    timeout: float | None = 10.0,
    metadata: Sequence[tuple[str, str]] = (),
    security: ClientSecurity | None = None,
) -> speech_pb2.Voice:
    """One voice; `conditioning`: a stored voice also carries what its enrolment computed."""
    security = security or ClientSecurity()
    with security.channel(address) as channel:
        return speech_pb2_grpc.SpeechStub(channel).GetVoice(
            speech_pb2.GetVoiceRequest(voice_id=voice_id, include_conditioning=conditioning),
            timeout=timeout,
            metadata=_call_metadata(metadata, security),
        )


def delete_voice(
    address: str,
    voice_id: str,
    *,
    timeout: float | None = 10.0,
    metadata: Sequence[tuple[str, str]] = (),
    security: ClientSecurity | None = None,
) -> None:
    security = security or ClientSecurity()
    with security.channel(address) as channel:
        speech_pb2_grpc.SpeechStub(channel).DeleteVoice(
            speech_pb2.DeleteVoiceRequest(voice_id=voice_id),
            timeout=timeout,
            metadata=_call_metadata(metadata, security),
        )


def list_voices(
    address: str,
    *,
    timeout: float | None = 10.0,
    metadata: Sequence[tuple[str, str]] = (),
    security: ClientSecurity | None = None,
) -> list[speech_pb2.Voice]:
    """The built-in voices, then the stored voices of the caller's API key."""
    security = security or ClientSecurity()
    with security.channel(address) as channel:
        listed = speech_pb2_grpc.SpeechStub(channel).ListVoices(
            speech_pb2.ListVoicesRequest(),
            timeout=timeout,
            metadata=_call_metadata(metadata, security),
        )
    return list(listed.voices)
