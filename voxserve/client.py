"""A Speech API client: what `voxserve say`, the demo and the tests use to synthesize."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from voxserve.common.request_id import METADATA_KEY, new_request_id
from voxserve.v1 import generator_pb2, speech_pb2, speech_pb2_grpc


@dataclass
class Synthesis:
    pcm16: bytes
    sample_rate: int
    first_audio_seconds: float
    """Measured by the client: request sent -> first audio byte received."""
    total_seconds: float
    summary: speech_pb2.Summary
    chunk_offsets: list[int]

    @property
    def samples(self) -> int:
        return len(self.pcm16) // 2

    @property
    def audio_seconds(self) -> float:
        return self.samples / self.sample_rate if self.sample_rate else 0.0

    @property
    def real_time_factor(self) -> float:
        return self.total_seconds / self.audio_seconds if self.audio_seconds else 0.0


def synthesize(
    address: str,
    text: str,
    *,
    voice: str = "default",
    style: generator_pb2.VoiceStyle | None = None,
    sampling: generator_pb2.SamplingParams | None = None,
    seed: int = 0,
    timeout: float | None = 300.0,
    metadata: Sequence[tuple[str, str]] = (),
) -> Synthesis:
    request = speech_pb2.SynthesizeRequest(text=text, voice=voice, sampling=sampling, seed=seed)
    if style is not None:
        request.style.CopyFrom(style)
    metadata = tuple(metadata) or ((METADATA_KEY, new_request_id()),)
    with grpc.insecure_channel(address) as channel:
        stub = speech_pb2_grpc.SpeechStub(channel)
        started = time.perf_counter()
        first_audio: float | None = None
        parts: list[bytes] = []
        offsets: list[int] = []
        sample_rate = 0
        summary = speech_pb2.Summary()
        for response in stub.Synthesize(request, timeout=timeout, metadata=metadata):
            if response.HasField("audio"):
                if first_audio is None:
                    first_audio = time.perf_counter() - started
                parts.append(response.audio.data)
                offsets.append(response.audio.sample_offset)
                sample_rate = response.audio.sample_rate
            else:
                summary = response.summary
        total = time.perf_counter() - started
    return Synthesis(b"".join(parts), sample_rate, first_audio or 0.0, total, summary, offsets)
