"""The Decode RPC serving S3Gen: the voice travels in the start message, every token's 960
samples come back, a malformed prompt is refused naming its field, and the seed decides the
noise."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
import torch

from tests.services.vocoder.helpers import refused, serving
from tests.services.vocoder.test_s3gen_codec import MAX_ABS_DIFF
from tests.services.vocoder.test_servicer import END, decode, frame, replay_matches_the_paced_stream
from voxserve.random_packs.voices import random_s3_voice
from voxserve.v1 import vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder.codecs.s3gen.codec import S3GenCodec
from voxserve.vocoder.codecs.s3gen.config import TINY
from voxserve.vocoder.codecs.s3gen.voice import S3Voice
from voxserve.vocoder.stream import ChunkPolicy

VOICE = random_s3_voice(TINY.flow, 16, seed=4)


def prompt(voice: S3Voice = VOICE) -> vocoder_pb2.S3Prompt:
    return vocoder_pb2.S3Prompt(
        prompt_tokens=voice.prompt_tokens.tolist(),
        prompt_mel_f32=voice.prompt_mel.numpy().astype("<f4").tobytes(),
        xvector=voice.xvector.tolist(),
    )


def start(seed: int = 0, s3_prompt: vocoder_pb2.S3Prompt | None = None) -> vocoder_pb2.DecodeRequest:
    return vocoder_pb2.DecodeRequest(
        start=vocoder_pb2.DecodeStart(codec="s3gen", seed=seed, s3_prompt=s3_prompt or prompt())
    )


def messages(n: int, seed: int = 0) -> list[vocoder_pb2.DecodeRequest]:
    ids = torch.randint(0, 6561, (n,), generator=torch.Generator().manual_seed(n)).tolist()
    return [start(seed), *(frame(ids[i : i + 3]) for i in range(0, n, 3)), END]


@pytest.fixture
async def address(s3gen_codec: S3GenCodec) -> AsyncIterator[str]:
    policy = ChunkPolicy(10, 40, 25, s3gen_codec.lookahead_tokens)
    async with serving(s3gen_codec, policy, max_stream_tokens=3000) as (address, _):
        yield address


async def test_every_token_comes_back_as_960_samples_and_the_seed_decides_the_noise(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = vocoder_pb2_grpc.VocoderStub(channel)
        first = await decode(stub, messages(41, seed=5))
        again = await decode(stub, messages(41, seed=5))
        other = await decode(stub, messages(41, seed=6))
    assert first.shape == (41 * 960,) and np.isfinite(first).all()
    # Chunking may differ between runs (it follows timing), the audio barely does.
    assert np.abs(first - again).max() < 5e-3
    assert np.abs(first - other).max() > 1e-2


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (vocoder_pb2.S3Prompt(), "start.s3_prompt.xvector has shape (0,); expected (192,)"),
        (
            vocoder_pb2.S3Prompt(prompt_tokens=[1, 2], prompt_mel_f32=b"\0" * 7, xvector=[0.0] * 192),
            "start.s3_prompt.prompt_mel_f32 has 7 bytes",
        ),
        (
            vocoder_pb2.S3Prompt(
                prompt_tokens=[1, 2], prompt_mel_f32=b"\0" * 4 * 4 * 80, xvector=[0.0] * 191
            ),
            "start.s3_prompt.xvector has shape (191,); expected (192,)",
        ),
    ],
)
async def test_a_malformed_prompt_is_refused_naming_its_field(
    address: str, bad: vocoder_pb2.S3Prompt, message: str
) -> None:
    error = await asyncio.to_thread(refused, address, [start(s3_prompt=bad), frame([1, 2, 3]), END])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (error.details() or "")


async def test_a_missing_prompt_and_a_spark_start_are_refused(address: str) -> None:
    no_prompt = vocoder_pb2.DecodeRequest(start=vocoder_pb2.DecodeStart(codec="s3gen"))
    error = await asyncio.to_thread(refused, address, [no_prompt, END])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "s3_prompt is required" in (
        error.details() or ""
    )
    spark = vocoder_pb2.DecodeRequest(start=vocoder_pb2.DecodeStart(codec="bicodec", global_ids=range(32)))
    error = await asyncio.to_thread(refused, address, [spark, END])
    assert "start.codec 'bicodec' is unknown; this vocoder serves 's3gen'" in (error.details() or "")


async def test_speech_ids_past_the_vocabulary_are_refused(address: str) -> None:
    error = await asyncio.to_thread(refused, address, [start(), frame([5, 6561]), END])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "frame.token_ids[1]=6561 is out of range [0, 6561)" in (error.details() or "")


async def test_a_replay_in_the_failed_replicas_chunks_continues_its_state_exactly(address: str) -> None:
    # S3Gen's chunkings each lie within MAX_ABS_DIFF of the offline decode (measured, see
    # test_s3gen_codec), so two of them within twice that; in the same chunks, exactly equal.
    async with grpc.aio.insecure_channel(address) as channel:
        stub = vocoder_pb2_grpc.VocoderStub(channel)
        await replay_matches_the_paced_stream(
            stub, messages(120, seed=3), chunking_tolerance=2 * MAX_ABS_DIFF
        )
