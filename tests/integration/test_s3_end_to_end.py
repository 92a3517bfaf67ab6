"""Text -> 24 kHz audio through the three real services on an s3 pack (a second vLLM engine)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import torch

from bench.s3gen_stream import snr_db
from tests.conftest import listed_voices, running_stack
from voxserve.client import synthesize
from voxserve.families.pack import Pack
from voxserve.random_packs.writer import write_random_pack
from voxserve.stack import LocalStack, Ports
from voxserve.v1 import generator_pb2, generator_pb2_grpc
from voxserve.vocoder.codecs.s3gen.codec import S3GenCodec
from voxserve.vocoder.codecs.s3gen.offline import decode_offline
from voxserve.vocoder.codecs.s3gen.voice import S3Voice


@pytest.fixture(scope="module")
def s3_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    pack = write_random_pack(tmp_path_factory.mktemp("s3-pack"), "tiny", seed=11, family="s3")
    logs = tmp_path_factory.mktemp("s3-logs")
    env = {"VOXSERVE_GENERATOR_MAX_NUM_SEQS": "4"}
    yield from running_stack(LocalStack(pack.root, Ports.free(), log_dir=logs, env=env))


def test_the_gateway_lists_the_packs_voice(s3_stack: LocalStack) -> None:
    voices = listed_voices(s3_stack)
    assert [(v.id, v.family, v.sample_rate) for v in voices] == [("default", "s3", 24000)]


def test_speech_streams_at_24_khz_with_every_tokens_samples_close_to_offline(s3_stack: LocalStack) -> None:
    text = "Streaming speech tokens into the flow as they are written."
    params = generator_pb2.SamplingParams(max_tokens=60, min_tokens=60, seed=3)
    result = synthesize(s3_stack.ports.address("gateway"), text, sampling=params, seed=21)
    assert result.sample_rate == 24000
    assert result.summary.semantic_tokens == 60 and result.summary.samples == 60 * 960
    assert 0 < result.first_audio_seconds < result.summary.total_seconds
    # The same tokens, decoded offline with the pack's voice and the same seed.
    with grpc.insecure_channel(s3_stack.ports.address("generator")) as channel:
        frames = generator_pb2_grpc.GeneratorStub(channel).Generate(
            generator_pb2.GenerateRequest(text=text, sampling=params), timeout=60
        )
        tokens = [t for f in frames for t in f.semantic_ids]
    assert len(tokens) == 60 and all(0 <= t < 6561 for t in tokens)
    pack = Pack.open(s3_stack.pack)
    codec = S3GenCodec.from_pack(pack.root)
    voice = S3Voice.load(pack.root / "voices" / "default.safetensors", codec.config.flow)
    reference = decode_offline(codec.model, torch.tensor(tokens), voice, seed=21)
    streamed = torch.from_numpy(np.frombuffer(result.pcm16, "<i2").astype(np.float32) / 32768.0)
    assert snr_db(reference, streamed) > 20.0
