"""Chatterbox voices from reference audio on a real gateway and vocoder (tiny chatterbox pack):
the stored voice conditions T3 (speaker embedding, prompt tokens, exaggeration) and the flow
(its prompt), and exports as a `conds.pt` that reads back identically."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.gateway.enrolment_harness import create_requests, gateway_server, vocoder_server, voiced, wav_bytes
from voxserve.families.conds import read_conds
from voxserve.gateway.voices import VoiceRegistry
from voxserve.random_packs.tiny_chatterbox import write_chatterbox_pack
from voxserve.random_packs.tiny_s3 import write_s3_pack
from voxserve.v1 import speech_pb2, vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder.codecs.s3gen.codec import S3GenCodec
from voxserve.voice_files import write_voice_file


@pytest.fixture(scope="module")
def chatterbox_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pack = tmp_path_factory.mktemp("chatterbox")
    write_chatterbox_pack(pack, seed=4)
    return pack


@pytest.fixture
async def chatterbox_vocoder(chatterbox_pack: Path) -> AsyncIterator[str]:
    async with vocoder_server(S3GenCodec.from_pack(chatterbox_pack)) as address:
        yield address


async def test_an_enrolled_chatterbox_voice_conditions_both_models_and_exports(
    tmp_path: Path, chatterbox_pack: Path, chatterbox_vocoder: str
) -> None:
    registry = VoiceRegistry.from_file(chatterbox_pack / "voices.json")
    async with gateway_server(tmp_path / "v.sqlite3", [chatterbox_vocoder], registry=registry) as gateway:
        speech = gateway.stub()
        header = speech_pb2.VoiceHeader(voice_id="ann", exaggeration=0.8)
        voice = await speech.CreateVoice(
            create_requests(header, wav_bytes(voiced(8.0, 44100), 44100)), timeout=60
        )
        assert (voice.family, voice.sample_rate, voice.stored) == ("chatterbox", 24000, True)

        stored = await speech.GetVoice(
            speech_pb2.GetVoiceRequest(voice_id="ann", include_conditioning=True), timeout=10
        )
        conditioning = stored.conditioning
        assert len(conditioning.chatterbox.speaker_embedding) == 256
        assert len(conditioning.chatterbox.prompt_tokens) == 150
        assert conditioning.chatterbox.exaggeration == pytest.approx(0.8)
        assert len(conditioning.s3_prompt.prompt_tokens) == 200  # the first 8 s at 25 Hz
        assert len(conditioning.s3_prompt.xvector) == 192
        # ListVoices and a plain GetVoice carry no conditioning.
        plain = await speech.GetVoice(speech_pb2.GetVoiceRequest(voice_id="ann"), timeout=10)
        assert not plain.HasField("conditioning")

        request = speech_pb2.SynthesizeRequest(text="Hello there.", voice="ann")
        assert [r async for r in speech.Synthesize(request, timeout=30)][-1].HasField("summary")
        job = gateway.runner.jobs[0]
        assert job.request.chatterbox == conditioning.chatterbox
        assert job.s3_prompt == conditioning.s3_prompt

    path = tmp_path / "conds.pt"
    assert write_voice_file(conditioning, path) == "conds.pt"
    conds = read_conds(path)
    assert conds.speaker_embedding.tolist() == pytest.approx(list(conditioning.chatterbox.speaker_embedding))
    assert conds.t3_prompt_tokens.tolist() == list(conditioning.chatterbox.prompt_tokens)
    assert conds.exaggeration == pytest.approx(0.8)
    assert conds.s3_prompt_tokens.tolist() == list(conditioning.s3_prompt.prompt_tokens)
    mel = np.frombuffer(conditioning.s3_prompt.prompt_mel_f32, dtype="<f4").reshape(-1, 80)
    assert np.array_equal(conds.prompt_mel, mel)
    assert np.array_equal(conds.xvector, np.asarray(conditioning.s3_prompt.xvector, dtype=np.float32))


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"exaggeration": 2.5}, "exaggeration is 2.5"),
        ({"exaggeration": 0.5, "family": "spark"}, "spark voices take none"),
    ],
)
async def test_a_bad_exaggeration_is_refused(
    tmp_path: Path, chatterbox_pack: Path, chatterbox_vocoder: str, fields: dict[str, object], words: str
) -> None:
    registry = VoiceRegistry.from_file(chatterbox_pack / "voices.json")
    async with gateway_server(tmp_path / "v.sqlite3", [chatterbox_vocoder], registry=registry) as gateway:
        header = speech_pb2.VoiceHeader(voice_id="bad", **fields)  # type: ignore[arg-type]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await gateway.stub().CreateVoice(create_requests(header, wav_bytes(voiced(3.0))), timeout=60)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in (caught.value.details() or "")


async def test_a_reference_too_short_for_one_token_is_invalid_argument(chatterbox_vocoder: str) -> None:
    request = vocoder_pb2.EncodeVoiceRequest(
        codec="s3gen", pcm_f32=voiced(0.015, 24000).astype("<f4").tobytes(), sample_rate=24000
    )
    async with grpc.aio.insecure_channel(chatterbox_vocoder) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await vocoder_pb2_grpc.VocoderStub(channel).EncodeVoice(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "audio" in (caught.value.details() or "")


async def test_an_s3_pack_enrols_the_flow_prompt_and_the_vocoder_gets_it(tmp_path: Path) -> None:
    pack = tmp_path / "s3"
    write_s3_pack(pack, seed=6)
    registry = VoiceRegistry.from_file(pack / "voices.json")
    async with vocoder_server(S3GenCodec.from_pack(pack)) as address:
        async with gateway_server(tmp_path / "v.sqlite3", [address], registry=registry) as gateway:
            speech = gateway.stub()
            header = speech_pb2.VoiceHeader(voice_id="flow-only")
            voice = await speech.CreateVoice(create_requests(header, wav_bytes(voiced(3.0))), timeout=60)
            assert (voice.family, voice.sample_rate) == ("s3", 24000)
            stored = await speech.GetVoice(
                speech_pb2.GetVoiceRequest(voice_id="flow-only", include_conditioning=True), timeout=10
            )
            assert not stored.conditioning.HasField("chatterbox")
            assert len(stored.conditioning.s3_prompt.prompt_tokens) == 75
            request = speech_pb2.SynthesizeRequest(text="Hello there.", voice="flow-only")
            assert [r async for r in speech.Synthesize(request, timeout=30)][-1].HasField("summary")
            assert gateway.runner.jobs[0].s3_prompt == stored.conditioning.s3_prompt
