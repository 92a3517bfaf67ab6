"""Real gRPC servers for enrolment tests: a vocoder on the tiny pack and a gateway whose
segments are recorded instead of generated (no language model needed). Registered as a pytest
plugin by tests/conftest.py: its fixtures `codec`, `vocoder`, `gateway` and `reference` serve
every test (a module's own fixture of the same name takes precedence)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import soundfile

from voxserve.common.auth import ApiKeys, api_key_interceptors
from voxserve.families.pack import Pack
from voxserve.gateway.app import speech_service
from voxserve.gateway.config import load
from voxserve.gateway.enrolment import VoiceEnrolment
from voxserve.gateway.pipeline import Replicas, SegmentJob
from voxserve.gateway.servicer import SpeechServicer
from voxserve.gateway.voice_directory import VoiceDirectory
from voxserve.gateway.voice_store import VoiceCache, open_voice_store
from voxserve.gateway.voices import VoiceRegistry
from voxserve.v1 import speech_pb2, speech_pb2_grpc, vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder.codecs.base import Codec
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.scheduler import Scheduler
from voxserve.vocoder.servicer import VocoderServicer
from voxserve.vocoder.stream import ChunkPolicy
from voxserve.vocoder.voice_encoding import VoiceEncoding

RATE = 16000


def voiced(seconds: float, rate: int = RATE, *, pitch: float = 140.0, seed: int = 0) -> np.ndarray:
    """A vowel-like test signal: harmonics of `pitch` with a slow vibrato and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = pitch * (1 + 0.03 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t) ** 2
    return (0.3 * wave * envelope / 2 + 0.01 * rng.standard_normal(t.size)).astype(np.float64)


def wav_bytes(samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def create_requests(
    header: speech_pb2.VoiceHeader, data: bytes, chunk: int = 65536
) -> Iterator[speech_pb2.CreateVoiceRequest]:
    yield speech_pb2.CreateVoiceRequest(header=header)
    for start in range(0, len(data), chunk):
        yield speech_pb2.CreateVoiceRequest(audio=data[start : start + chunk])


class RecordingRunner:
    """Records every segment job and answers it with a few samples of silence."""

    def __init__(self) -> None:
        self.jobs: list[SegmentJob] = []

    async def __call__(self, job: SegmentJob) -> AsyncIterator[vocoder_pb2.AudioChunk]:
        self.jobs.append(job)
        job.stats.global_ids = tuple(job.request.global_tokens.ids)
        job.stats.voice_known.set()
        job.stats.generated.set()
        pcm = np.zeros(320, np.float32).tobytes()
        yield vocoder_pb2.AudioChunk(pcm_f32=pcm, sample_rate=job.family.sample_rate, final=True)


@contextlib.asynccontextmanager
async def vocoder_server(codec: Codec) -> AsyncIterator[str]:
    """The real Vocoder service (decode and EncodeVoice) for `codec` on a free port."""
    policy = ChunkPolicy(
        first_chunk_tokens=10, max_chunk_tokens=40, left_context_tokens=4, lookahead_tokens=4
    )
    scheduler = Scheduler(codec, policy)
    scheduler.start()
    server = grpc.aio.server()
    encoding = VoiceEncoding(codec, max_encodes=2, max_seconds=120.0)
    servicer = VocoderServicer(codec, scheduler, max_stream_tokens=2000, voice_encoding=encoding)
    vocoder_pb2_grpc.add_VocoderServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
        await scheduler.stop()


@dataclass
class Gateway:
    address: str
    runner: RecordingRunner
    cache: VoiceCache
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    def stub(self) -> speech_pb2_grpc.SpeechStub:
        channel = grpc.aio.insecure_channel(self.address)
        self.channels.append(channel)
        return speech_pb2_grpc.SpeechStub(channel)


@contextlib.asynccontextmanager
async def gateway_server(
    store: str | Path,
    vocoders: Sequence[str],
    *,
    keys: Sequence[str] = (),
    registry: VoiceRegistry | None = None,
    **settings: Any,
) -> AsyncIterator[Gateway]:
    """A real gateway server (Speech API, key checks, voice store) on a free port."""
    config = load(voice_store=str(store), **settings)
    backend = open_voice_store(config.voice_store)
    await backend.open()
    cache = VoiceCache(backend, check_seconds=config.voice_cache_seconds)
    await cache.start()
    channels = [grpc.aio.insecure_channel(address) for address in vocoders]
    directory = VoiceDirectory(registry or VoiceRegistry.builtin(), cache)
    runner = RecordingRunner()
    servicer = SpeechServicer(
        directory,
        runner,
        config,
        enrolment=VoiceEnrolment(
            directory, Replicas([vocoder_pb2_grpc.VocoderStub(c) for c in channels]), config
        ),
        keyed=bool(keys),
    )
    spec = speech_service(servicer, interceptors=api_key_interceptors(ApiKeys(keys)))
    server = grpc.aio.server(interceptors=spec.interceptors)
    spec.register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    gateway = Gateway(f"127.0.0.1:{port}", runner, cache)
    try:
        yield gateway
    finally:
        await server.stop(None)
        for channel in (*channels, *gateway.channels):
            await channel.close()
        await cache.stop()
        await backend.close()


@pytest.fixture(scope="module")
def codec(tiny_pack: Pack) -> BiCodec:
    return BiCodec.from_pack(tiny_pack.root)


@pytest.fixture
async def vocoder(codec: BiCodec) -> AsyncIterator[str]:
    """A real vocoder (decode and EncodeVoice) on the tiny pack."""
    async with vocoder_server(codec) as address:
        yield address


@pytest.fixture
async def gateway(tmp_path: Path, vocoder: str) -> AsyncIterator[Gateway]:
    """A real gateway on that vocoder, with its own SQLite store."""
    async with gateway_server(tmp_path / "voices.sqlite3", [vocoder]) as running:
        yield running


@pytest.fixture(scope="module")
def reference() -> bytes:
    """Three seconds of a voiced test signal, as a 16 kHz WAV file."""
    return wav_bytes(voiced(3.0))
