"""A speaker-name Spark fine-tune through the three real services (its own vLLM engine): Hindi text
with inline emotion tags, streamed in deltas, in one named speaker's voice across segments."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests.conftest import listed_voices, running_stack
from voxserve.client import synthesize_stream
from voxserve.random_packs.tiny_speakers import SPEAKER_NAMES
from voxserve.random_packs.writer import write_random_pack
from voxserve.stack import LocalStack, Ports
from voxserve.v1 import generator_pb2, generator_pb2_grpc

HINDI = "नमस्ते <laugh> आप कैसे हैं? <excited> आज मौसम बहुत अच्छा है। चलो पार्क में घूमने चलते हैं।"


@pytest.fixture(scope="module")
def speaker_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    pack = write_random_pack(tmp_path_factory.mktemp("speaker-pack"), "tiny", seed=17, speakers=True)
    logs = tmp_path_factory.mktemp("speaker-logs")
    env = {"VOXSERVE_GENERATOR_MAX_NUM_SEQS": "4"}
    yield from running_stack(LocalStack(pack.root, Ports.free(), log_dir=logs, env=env))


def generate(stack: LocalStack, speaker: generator_pb2.Speaker, seed: int) -> list[generator_pb2.TokenFrame]:
    request = generator_pb2.GenerateRequest(
        text="नमस्ते <sigh>", speaker=speaker, sampling=generator_pb2.SamplingParams(max_tokens=20, seed=seed)
    )
    with grpc.insecure_channel(stack.ports.address("generator")) as channel:
        return list(generator_pb2_grpc.GeneratorStub(channel).Generate(request, timeout=60))


def test_the_gateway_lists_the_twelve_speakers(speaker_stack: LocalStack) -> None:
    voices = listed_voices(speaker_stack)
    assert [v.speaker for v in voices if v.id != "default"] == list(SPEAKER_NAMES)
    assert {(v.family, v.sample_rate, v.controllable) for v in voices} == {("spark", 16000, False)}


def test_hindi_with_emotion_tags_streams_end_to_end_in_several_segments(speaker_stack: LocalStack) -> None:
    deltas = [HINDI[i : i + 6] for i in range(0, len(HINDI), 6)]
    result = synthesize_stream(
        speaker_stack.ports.address("gateway"),
        deltas,
        voice="meera",
        sampling=generator_pb2.SamplingParams(max_tokens=60, seed=4),
        delay_seconds=0.005,
    )
    summary = result.summary
    assert result.sample_rate == 16000 and summary.segments >= 2
    assert summary.samples == result.samples > 0
    segments = summary.timeline.segments
    assert len(segments) == summary.segments
    assert all(s.samples == s.semantic_tokens * 320 > 0 for s in segments), "every token is heard"
    # The tags (16 characters) reach the model as text: only the spaces between segments go.
    assert len(HINDI) - summary.segments < sum(s.characters for s in segments) <= len(HINDI)


def test_the_speakers_globals_are_generated_once_then_prefilled(speaker_stack: LocalStack) -> None:
    first = generate(speaker_stack, generator_pb2.Speaker(name="kabir"), seed=1)
    globals_ = list(first[0].global_ids)
    assert len(globals_) == 32 and all(0 <= g < 4096 for g in globals_)
    again = generate(speaker_stack, generator_pb2.Speaker(name="kabir", global_ids=globals_), seed=2)
    assert list(again[0].global_ids) == globals_
    # A prefilled voice costs the model nothing to choose: its prompt already holds the 32 globals.
    assert again[-1].result.prompt_tokens >= first[-1].result.prompt_tokens
    assert sum(len(f.semantic_ids) for f in again) == 20


def test_a_style_or_an_unknown_speaker_is_refused(speaker_stack: LocalStack) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        generate(speaker_stack, generator_pb2.Speaker(name="bob"), seed=1)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'bob' is not one of this pack's speakers: aarav, diya" in (raised.value.details() or "")
    request = generator_pb2.GenerateRequest(text="नमस्ते", style=generator_pb2.VoiceStyle(pitch=1))
    with grpc.insecure_channel(speaker_stack.ports.address("generator")) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            list(generator_pb2_grpc.GeneratorStub(channel).Generate(request, timeout=60))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "style is not accepted: this pack names its speakers" in (raised.value.details() or "")
