"""The baseline's decode loop behind the Vocoder API."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest

from bench.baseline_vocoder import BaselineVocoderServicer
from bench.seed_loop import baseline_decode_windows
from tests.services.vocoder.helpers import refused
from voxserve.random_packs.tiny_bicodec import write_tiny_bicodec
from voxserve.v1 import vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder.codecs.bicodec import BiCodec


@pytest.fixture
async def stub(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[vocoder_pb2_grpc.VocoderStub, str]]:
    pack = tmp_path_factory.mktemp("baseline-vocoder")
    write_tiny_bicodec(pack, seed=0)
    server = grpc.aio.server()
    vocoder_pb2_grpc.add_VocoderServicer_to_server(BaselineVocoderServicer(BiCodec.from_pack(pack)), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield vocoder_pb2_grpc.VocoderStub(channel), f"127.0.0.1:{port}"
    await server.stop(None)


def messages(n_tokens: int, frame: int) -> list[vocoder_pb2.DecodeRequest]:
    rng = random.Random(n_tokens)
    tokens = [rng.randrange(8192) for _ in range(n_tokens)]
    start = vocoder_pb2.DecodeStart(codec="bicodec", global_ids=[rng.randrange(4096) for _ in range(32)])
    frames = [
        vocoder_pb2.DecodeRequest(frame=vocoder_pb2.DecodeFrame(token_ids=tokens[i : i + frame]))
        for i in range(0, n_tokens, frame)
    ]
    return [
        vocoder_pb2.DecodeRequest(start=start),
        *frames,
        vocoder_pb2.DecodeRequest(end=vocoder_pb2.DecodeEnd()),
    ]


async def test_the_seed_schedule_streams_every_sample(stub: tuple[vocoder_pb2_grpc.VocoderStub, str]) -> None:
    chunks = [c async for c in stub[0].Decode(iter(messages(130, 1)), timeout=60)]
    assert chunks[-1].final and sum(c.final for c in chunks) == 1
    assert sum(len(c.pcm_f32) // 4 for c in chunks) == 130 * 320
    offsets = [c.sample_offset for c in chunks]
    assert offsets == sorted(offsets)
    # Four decodes (at 10, 58 and 106 tokens and the closing one at 130) each send audio, then
    # the held-back crossfade tail ends the stream.
    assert len(baseline_decode_windows(130)) == 4
    assert len([c for c in chunks if not c.final]) == 4
    assert np.isfinite(np.frombuffer(b"".join(c.pcm_f32 for c in chunks), np.float32)).all()


async def test_bad_input_is_invalid_argument(stub: tuple[vocoder_pb2_grpc.VocoderStub, str]) -> None:
    error = await asyncio.to_thread(refused, stub[1], messages(20, 5)[1:])  # no start message
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "first message" in (error.details() or "")  # type: ignore[attr-defined]
