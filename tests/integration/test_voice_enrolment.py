"""Voices from reference audio through the three real services (one shared vLLM engine): enrol
with the client and with grpcurl, then speak with the voice; the transcript's reference tokens
lead the generator's prompt."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import grpc

from tests.gateway.enrolment_harness import voiced, wav_bytes
from tests.integration.test_grpcurl import grpcurl
from voxserve.client import create_voice, delete_voice, get_voice, synthesize
from voxserve.families import spark
from voxserve.gateway.reference_audio import ReferenceLimits, read_reference
from voxserve.stack import LocalStack
from voxserve.v1 import generator_pb2, speech_pb2, vocoder_pb2, vocoder_pb2_grpc

TRANSCRIPT = "This is how I sound."


def encode(stack: LocalStack, reference: bytes, reference_tokens: bool) -> vocoder_pb2.EncodedVoice:
    enrolment = spark.FAMILY.enrolment
    assert enrolment is not None
    prepared = read_reference(reference, speech_pb2.REFERENCE_FORMAT_FILE, 0, enrolment, ReferenceLimits())
    request = vocoder_pb2.EncodeVoiceRequest(
        codec="bicodec",
        pcm_f32=prepared.samples.tobytes(),
        sample_rate=prepared.sample_rate,
        reference_tokens=reference_tokens,
    )
    with grpc.insecure_channel(stack.ports.address("vocoder")) as channel:
        return vocoder_pb2_grpc.VocoderStub(channel).EncodeVoice(request, timeout=60)


def summary_of(stack: LocalStack, voice: str) -> speech_pb2.Summary:
    sampling = generator_pb2.SamplingParams(max_tokens=20, seed=3)
    return synthesize(stack.ports.address("gateway"), "Say this.", voice=voice, sampling=sampling).summary


def test_an_enrolled_voice_speaks_and_its_transcript_leads_the_prompt(stack: LocalStack) -> None:
    gateway = stack.ports.address("gateway")
    reference = wav_bytes(voiced(4.0, pitch=180.0, seed=11))
    encoded = encode(stack, reference, True)
    assert encode(stack, reference, True) == encoded  # the same audio, the same ids
    assert len(encoded.global_ids) == 32 and len(encoded.reference_semantic_ids) == 199

    plain = create_voice(gateway, "e2e-plain", reference)
    cloned = create_voice(gateway, "e2e-cloned", reference, transcript=TRANSCRIPT)
    assert plain.stored and cloned.transcript == TRANSCRIPT
    try:
        without, with_reference = summary_of(stack, "e2e-plain"), summary_of(stack, "e2e-cloned")
        assert without.samples > 0 and with_reference.samples > 0
        # The reference's semantic ids, its text and the start-of-semantic marker lead the prompt.
        added = with_reference.prompt_tokens - without.prompt_tokens
        assert added > len(encoded.reference_semantic_ids) + 1
        assert get_voice(gateway, "e2e-cloned") == cloned
    finally:
        delete_voice(gateway, "e2e-plain")
        delete_voice(gateway, "e2e-cloned")


def test_grpcurl_enrols_a_voice_from_a_file(stack: LocalStack, tmp_path: Path) -> None:
    """The README's example: the header, then the file's bytes in base64, as JSON messages."""
    path = tmp_path / "me.wav"
    path.write_bytes(wav_bytes(voiced(3.0, seed=2)))
    messages = [
        json.dumps({"header": {"voiceId": "from-grpcurl", "displayName": "Me"}}),
        json.dumps({"audio": base64.b64encode(path.read_bytes()).decode()}),
    ]
    gateway = stack.ports.address("gateway")
    printed = grpcurl("-d", "@", gateway, "voxserve.v1.Speech/CreateVoice", stdin="\n".join(messages))
    voice = json.loads(printed)
    assert (voice["id"], voice["stored"]) == ("from-grpcurl", True), printed
    assert voice.get("displayName", voice.get("display_name")) == "Me", printed
    listed = json.loads(grpcurl(gateway, "voxserve.v1.Speech/ListVoices"))
    assert "from-grpcurl" in [v["id"] for v in listed["voices"]]
    grpcurl("-d", '{"voiceId": "from-grpcurl"}', gateway, "voxserve.v1.Speech/DeleteVoice")
    listed = json.loads(grpcurl(gateway, "voxserve.v1.Speech/ListVoices"))
    assert "from-grpcurl" not in [v["id"] for v in listed["voices"]]
