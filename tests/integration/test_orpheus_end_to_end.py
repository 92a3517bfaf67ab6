"""Text -> 24 kHz audio through the three real services on a tiny orpheus pack (its own vLLM engine):
Llama writing SNAC codes held to their frame positions, SNAC decoding them as they arrive."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch

from tests.conftest import listed_voices, running_stack
from tests.integration.test_grpcurl import grpcurl
from voxserve.client import synthesize
from voxserve.families.pack import Pack
from voxserve.random_packs.tiny_orpheus import ORPHEUS_VOICES
from voxserve.random_packs.writer import write_random_pack
from voxserve.stack import LocalStack, Ports
from voxserve.v1 import generator_pb2, generator_pb2_grpc
from voxserve.vocoder.codecs.snac.codec import SnacCodec

FRAME_SAMPLES = 2048


@pytest.fixture(scope="module")
def orpheus_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    pack = write_random_pack(tmp_path_factory.mktemp("orpheus-pack"), "tiny", seed=13, family="orpheus")
    logs = tmp_path_factory.mktemp("orpheus-logs")
    env = {"VOXSERVE_GENERATOR_MAX_NUM_SEQS": "4"}
    yield from running_stack(LocalStack(pack.root, Ports.free(), log_dir=logs, env=env))


def generate(stack: LocalStack, request: generator_pb2.GenerateRequest) -> list[generator_pb2.TokenFrame]:
    with grpc.insecure_channel(stack.ports.address("generator")) as channel:
        return list(generator_pb2_grpc.GeneratorStub(channel).Generate(request, timeout=60))


def test_the_gateway_lists_one_voice_per_speaker_at_24_khz(orpheus_stack: LocalStack) -> None:
    voices = listed_voices(orpheus_stack)
    assert {(v.id, v.speaker) for v in voices} == {("default", "tara"), *((n, n) for n in ORPHEUS_VOICES)}
    assert {(v.family, v.sample_rate, v.controllable) for v in voices} == {("orpheus", 24000, False)}


def test_every_frame_is_whole_and_every_code_in_range(orpheus_stack: LocalStack) -> None:
    params = generator_pb2.SamplingParams(max_tokens=140, min_tokens=140, seed=9, temperature=1.0)
    request = generator_pb2.GenerateRequest(
        text="Every code in its place.", speaker=generator_pb2.Speaker(name="zoe")
    )
    request.sampling.CopyFrom(params)
    frames = generate(orpheus_stack, request)
    codes = [c for f in frames for c in f.semantic_ids]
    assert all(len(f.semantic_ids) % 7 == 0 for f in frames) and not any(f.global_ids for f in frames)
    assert len(codes) == 140 and all(0 <= c < 4096 for c in codes)
    assert frames[-1].result.semantic_tokens == 140
    assert frames[-1].result.finish_reason == generator_pb2.GenerateResult.LENGTH


def test_every_frame_is_heard_and_the_stream_matches_the_offline_decode(orpheus_stack: LocalStack) -> None:
    text = "Streaming SNAC frames as the model writes them."
    params = generator_pb2.SamplingParams(max_tokens=70, min_tokens=70, seed=3)
    result = synthesize(orpheus_stack.ports.address("gateway"), text, voice="leo", sampling=params, seed=21)
    # The first frame and the last frames are all there: 10 frames, exactly 10 x 2048 samples.
    assert result.sample_rate == 24000
    assert result.summary.semantic_tokens == 70 and result.summary.samples == 10 * FRAME_SAMPLES
    assert result.samples == 10 * FRAME_SAMPLES
    assert 0 < result.first_audio_seconds < result.summary.total_seconds
    # The same codes, decoded in one piece with the same noise seed.
    request = generator_pb2.GenerateRequest(text=text, speaker=generator_pb2.Speaker(name="leo"))
    request.sampling.CopyFrom(params)
    codes = [c for f in generate(orpheus_stack, request) for c in f.semantic_ids]
    codec = SnacCodec.from_pack(Pack.open(orpheus_stack.pack).root)
    reference = codec.decode(torch.tensor(codes).reshape(1, -1, 7), seeds=[21], first_frames=[0])[0].numpy()
    streamed = np.frombuffer(result.pcm16, "<i2").astype(np.float32) / 32767.0
    assert np.abs(reference).max() > 0.01, "the reference is not silence"
    # Beyond PCM16 rounding (half a step), the streamed decode is within 1e-5 of the offline one.
    assert np.abs(np.clip(reference, -1, 1) - streamed).max() <= 0.5 / 32767 + 1e-5


def test_bad_orpheus_requests_are_refused_naming_the_field(orpheus_stack: LocalStack) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        synthesize(
            orpheus_stack.ports.address("gateway"),
            "Too short a cap.",
            voice="mia",
            sampling=generator_pb2.SamplingParams(max_tokens=6),
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sampling.max_tokens=6 is less than one orpheus frame (7 tokens)" in (raised.value.details() or "")
    bad = [
        (generator_pb2.Speaker(name="bob"), "'bob' is not one of this pack's speakers: tara, leah"),
        (generator_pb2.Speaker(name="tara", global_ids=[1] * 32), "speaker.global_ids is not accepted"),
    ]
    for speaker, message in bad:
        with pytest.raises(grpc.RpcError) as raised:
            generate(orpheus_stack, generator_pb2.GenerateRequest(text="Hi.", speaker=speaker))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (raised.value.details() or "")
    with pytest.raises(grpc.RpcError) as raised:
        generate(orpheus_stack, generator_pb2.GenerateRequest(text="Hi.", style=generator_pb2.VoiceStyle()))
    assert "style is not accepted" in (raised.value.details() or "")


def test_voxserve_say_writes_24_khz_wav(orpheus_stack: LocalStack, tmp_path: Path) -> None:
    out = tmp_path / "zoe.wav"
    address = orpheus_stack.ports.address("gateway")
    command = [sys.executable, "-m", "voxserve.cli", "say", "--address", address, "--voice", "zoe"]
    command += ["--max-tokens", "35", "-o", str(out), "Hello <chuckle> from Orpheus."]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with wave.open(str(out)) as audio:
        assert audio.getframerate() == 24000 and audio.getnframes() % FRAME_SAMPLES == 0
        assert 0 < audio.getnframes() <= 5 * FRAME_SAMPLES


def test_grpcurl_drives_the_orpheus_generator_by_speaker_name(orpheus_stack: LocalStack) -> None:
    body = '{"text": "Hi <laugh>.", "speaker": {"name": "tara"}, "sampling": {"max_tokens": 28}}'
    out = grpcurl("-d", body, orpheus_stack.ports.address("generator"), "voxserve.v1.Generator/Generate")
    frames = [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00")]
    codes = [c for f in frames for c in f.get("semantic_ids", [])]
    assert len(codes) == 28 and all(len(f.get("semantic_ids", [])) % 7 == 0 for f in frames)
    assert frames[-1]["result"]["semantic_tokens"] == 28
