"""Text -> 24 kHz audio through the three real services on a tiny chatterbox pack (its own vLLM
engine running T3): S3 tokens go to the S3Gen flow as T3 writes them; a voice enrolled from
reference audio speaks and exports as `conds.pt`."""

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

from bench.s3gen_stream import snr_db
from tests.conftest import listed_voices, running_stack
from tests.gateway.enrolment_harness import voiced, wav_bytes
from tests.integration.test_grpcurl import grpcurl
from voxserve.client import create_voice, delete_voice, get_voice, synthesize
from voxserve.families.chatterbox import read_conds_voice
from voxserve.families.conds import read_conds
from voxserve.families.pack import Pack
from voxserve.random_packs.voices import read_conds_voices
from voxserve.random_packs.writer import write_random_pack
from voxserve.stack import LocalStack, Ports
from voxserve.v1 import generator_pb2, generator_pb2_grpc
from voxserve.vocoder.codecs.s3gen.codec import S3GenCodec
from voxserve.vocoder.codecs.s3gen.offline import decode_offline

TOKEN_SAMPLES = 960


@pytest.fixture(scope="module")
def chatterbox_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    pack = write_random_pack(tmp_path_factory.mktemp("chatterbox-pack"), "tiny", seed=17, family="chatterbox")
    logs = tmp_path_factory.mktemp("chatterbox-logs")
    env = {"VOXSERVE_GENERATOR_MAX_NUM_SEQS": "4"}
    yield from running_stack(LocalStack(pack.root, Ports.free(), log_dir=logs, env=env))


def generate(stack: LocalStack, request: generator_pb2.GenerateRequest) -> list[int]:
    with grpc.insecure_channel(stack.ports.address("generator")) as channel:
        frames = generator_pb2_grpc.GeneratorStub(channel).Generate(request, timeout=60)
        return [t for f in frames for t in f.semantic_ids]


def test_the_gateway_lists_the_packs_conds_voices(chatterbox_stack: LocalStack) -> None:
    voices = listed_voices(chatterbox_stack)
    assert [(v.id, v.family, v.sample_rate) for v in voices] == [
        ("default", "chatterbox", 24000),
        ("narrator", "chatterbox", 24000),
    ]


def test_speech_streams_at_24_khz_and_matches_the_offline_flow(chatterbox_stack: LocalStack) -> None:
    text = "Streaming speech tokens into the flow as T3 writes them."
    params = generator_pb2.SamplingParams(max_tokens=60, min_tokens=60, seed=3)
    result = synthesize(chatterbox_stack.ports.address("gateway"), text, sampling=params, seed=21)
    assert result.sample_rate == 24000
    assert result.summary.semantic_tokens == 60 and result.summary.samples == 60 * TOKEN_SAMPLES
    # Pipelined: the first audio left the gateway before T3 had written its last token.
    timeline = result.summary.timeline
    assert timeline.first_audio_seconds < timeline.segments[0].finished_seconds
    # The generator alone, with the pack's own conds.pt (the gateway's "default" voice), gives
    # the same tokens for the same seed; the flow decodes them offline to what was streamed.
    tokens = generate(chatterbox_stack, generator_pb2.GenerateRequest(text=text, sampling=params))
    assert len(tokens) == 60 and all(0 <= t < 6561 for t in tokens)
    pack = Pack.open(chatterbox_stack.pack)
    codec = S3GenCodec.from_pack(pack.root)
    _, voice = read_conds_voices(pack.root / "conds.pt")
    reference = decode_offline(codec.model, torch.tensor(tokens), voice, seed=21)
    streamed = torch.from_numpy(np.frombuffer(result.pcm16, "<i2").astype(np.float32) / 32768.0)
    assert snr_db(reference, streamed) > 20.0


def test_the_voice_and_the_guidance_steer_t3(chatterbox_stack: LocalStack) -> None:
    pack = Pack.open(chatterbox_stack.pack)
    narrator, _ = read_conds_voice(pack.root / "voices" / "narrator.pt")
    text = "Same words, other voice."

    def tokens(**fields: object) -> list[int]:
        sampling = generator_pb2.SamplingParams(temperature=0, max_tokens=30, min_tokens=30)
        for name, value in fields.items():
            if name != "chatterbox":
                setattr(sampling, name, value)
        request = generator_pb2.GenerateRequest(text=text, sampling=sampling)
        if "chatterbox" in fields:
            request.chatterbox.CopyFrom(fields["chatterbox"])  # type: ignore[arg-type]
        return generate(chatterbox_stack, request)

    default = tokens()
    assert tokens() == default  # greedy: deterministic
    assert tokens(chatterbox=narrator) != default
    assert tokens(guidance=0.0) != default
    assert tokens(exaggeration=1.5) != default


def test_bad_chatterbox_requests_are_refused_naming_the_field(chatterbox_stack: LocalStack) -> None:
    bad = [
        (generator_pb2.SamplingParams(guidance=5.0), "sampling.guidance=5 must be in [0, 3]"),
        (generator_pb2.SamplingParams(exaggeration=-1.0), "sampling.exaggeration=-1 must be in [0, 2]"),
        (generator_pb2.SamplingParams(min_p=1.0), "sampling.min_p=1 must be in [0, 1)"),
    ]
    for sampling, message in bad:
        with pytest.raises(grpc.RpcError) as raised:
            generate(chatterbox_stack, generator_pb2.GenerateRequest(text="Hi.", sampling=sampling))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in (raised.value.details() or "")
    voice = generator_pb2.ChatterboxVoice(speaker_embedding=[0.0] * 256, prompt_tokens=[7] * 151)
    with pytest.raises(grpc.RpcError) as raised:
        generate(chatterbox_stack, generator_pb2.GenerateRequest(text="Hi.", chatterbox=voice))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "chatterbox.prompt_tokens has 151 tokens" in (raised.value.details() or "")
    with pytest.raises(grpc.RpcError) as raised:
        generate(
            chatterbox_stack, generator_pb2.GenerateRequest(text="Hi.", style=generator_pb2.VoiceStyle())
        )
    assert "style is not accepted" in (raised.value.details() or "")
    # The engine still serves everyone after the refusals.
    assert (
        len(
            generate(
                chatterbox_stack,
                generator_pb2.GenerateRequest(
                    text="Fine.", sampling=generator_pb2.SamplingParams(max_tokens=5, min_tokens=5)
                ),
            )
        )
        == 5
    )


def test_voxserve_say_writes_24_khz_wav(chatterbox_stack: LocalStack, tmp_path: Path) -> None:
    out = tmp_path / "narrator.wav"
    address = chatterbox_stack.ports.address("gateway")
    command = [sys.executable, "-m", "voxserve.cli", "say", "--address", address, "--voice", "narrator"]
    command += ["--max-tokens", "25", "-o", str(out), "Hello from Chatterbox."]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with wave.open(str(out)) as audio:
        assert audio.getframerate() == 24000
        assert 0 < audio.getnframes() <= 25 * TOKEN_SAMPLES


def test_grpcurl_drives_the_t3_generator(chatterbox_stack: LocalStack) -> None:
    body = '{"text": "Hi there.", "sampling": {"max_tokens": 12, "min_tokens": 12, "guidance": 0.7}}'
    out = grpcurl("-d", body, chatterbox_stack.ports.address("generator"), "voxserve.v1.Generator/Generate")
    frames = [json.loads(chunk) for chunk in out.replace("}\n{", "}\x00{").split("\x00")]
    tokens = [t for f in frames for t in f.get("semantic_ids", [])]
    assert len(tokens) == 12 and all(0 <= t < 6561 for t in tokens)
    assert frames[-1]["result"]["semantic_tokens"] == 12


def pcm(stack: LocalStack, voice: str) -> bytes:
    sampling = generator_pb2.SamplingParams(max_tokens=20, min_tokens=20, seed=5)
    return synthesize(
        stack.ports.address("gateway"), "Hello there.", voice=voice, sampling=sampling, seed=5
    ).pcm16


def test_an_enrolled_voice_speaks_differently_and_exports_as_conds(
    chatterbox_stack: LocalStack, tmp_path: Path
) -> None:
    gateway = chatterbox_stack.ports.address("gateway")
    voice = create_voice(
        gateway, "e2e-ann", wav_bytes(voiced(6.0, 24000, pitch=200.0), 24000), exaggeration=0.7
    )
    try:
        assert (voice.family, voice.stored) == ("chatterbox", True)
        enrolled, default = pcm(chatterbox_stack, "e2e-ann"), pcm(chatterbox_stack, "default")
        assert len(enrolled) == len(default) > 0
        assert enrolled != default

        out = tmp_path / "ann.pt"
        command = [sys.executable, "-m", "voxserve.cli", "voices", "export", "e2e-ann", str(out)]
        done = subprocess.run([*command, "--address", gateway], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        conditioning = get_voice(gateway, "e2e-ann", conditioning=True).conditioning
        conds = read_conds(out)
        assert np.array_equal(
            conds.speaker_embedding, np.asarray(conditioning.chatterbox.speaker_embedding, "f4")
        )
        assert conds.t3_prompt_tokens.tolist() == list(conditioning.chatterbox.prompt_tokens)
        assert conds.s3_prompt_tokens.tolist() == list(conditioning.s3_prompt.prompt_tokens)
        assert np.array_equal(conds.xvector, np.asarray(conditioning.s3_prompt.xvector, "f4"))
        assert abs(conds.exaggeration - 0.7) < 1e-6
    finally:
        delete_voice(gateway, "e2e-ann")
