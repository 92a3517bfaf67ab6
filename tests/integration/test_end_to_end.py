"""Text -> audio through the three real services on localhost (one shared vLLM engine)."""

from __future__ import annotations

import json
import time

import grpc
import numpy as np
import pytest
import soundfile
import torch

from voxserve.client import synthesize
from voxserve.families.pack import Pack
from voxserve.gateway.audio import write_wav_pcm16
from voxserve.gateway.voices import VoiceRegistry
from voxserve.scrape import scrape
from voxserve.stack import LocalStack
from voxserve.v1 import (
    generator_pb2,
    generator_pb2_grpc,
    speech_pb2,
    speech_pb2_grpc,
    vocoder_pb2,
    vocoder_pb2_grpc,
)
from voxserve.vocoder.codecs.base import VoiceConditioning
from voxserve.vocoder.codecs.bicodec import BiCodec

SAMPLES_PER_TOKEN = 320
# Streamed vs offline decode: the vocoder picks its context so that the difference stays within
# its configured tolerance (VOXSERVE_VOCODER_CONTEXT_TOLERANCE, default 1e-4).
STREAM_TOLERANCE = 1e-4


def sampling(max_tokens: int, seed: int | None = None, exact: bool = False) -> generator_pb2.SamplingParams:
    """Sampling with a token cap; `exact` also forbids an earlier end, for a known token count."""
    params = generator_pb2.SamplingParams(max_tokens=max_tokens, min_tokens=max_tokens if exact else 0)
    if seed is not None:
        params.seed = seed
    return params


def generate_tokens(stack: LocalStack, text: str, **kwargs: object) -> tuple[list[int], list[int]]:
    with grpc.insecure_channel(stack.ports.address("generator")) as channel:
        stub = generator_pb2_grpc.GeneratorStub(channel)
        global_ids: list[int] = []
        semantic: list[int] = []
        for frame in stub.Generate(generator_pb2.GenerateRequest(text=text, **kwargs), timeout=60):
            global_ids.extend(frame.global_ids)
            semantic.extend(frame.semantic_ids)
    return global_ids, semantic


def decode_stream(
    stack: LocalStack, requests: list[vocoder_pb2.DecodeRequest]
) -> list[vocoder_pb2.AudioChunk]:
    with grpc.insecure_channel(stack.ports.address("vocoder")) as channel:
        stub = vocoder_pb2_grpc.VocoderStub(channel)
        return list(stub.Decode(iter(requests), timeout=60))


def decode_requests(
    global_ids: list[int], tokens: list[int], frame: int = 7
) -> list[vocoder_pb2.DecodeRequest]:
    messages = [
        vocoder_pb2.DecodeRequest(start=vocoder_pb2.DecodeStart(codec="bicodec", global_ids=global_ids))
    ]
    for i in range(0, len(tokens), frame):
        messages.append(
            vocoder_pb2.DecodeRequest(frame=vocoder_pb2.DecodeFrame(token_ids=tokens[i : i + frame]))
        )
    messages.append(vocoder_pb2.DecodeRequest(end=vocoder_pb2.DecodeEnd()))
    return messages


def offline_decode(pack: Pack, global_ids: list[int], tokens: list[int]) -> np.ndarray:
    codec = BiCodec.from_pack(pack.root)
    cond = codec.condition(VoiceConditioning(global_ids=tuple(global_ids)))
    return codec.decode(torch.tensor([tokens]), cond[None]).numpy()[0]


def test_text_to_audio_has_exact_sample_count(stack: LocalStack, tmp_path) -> None:
    result = synthesize(
        stack.ports.address("gateway"), "Hello there. This is a streamed sentence.", sampling=sampling(120)
    )
    summary = result.summary
    assert summary.semantic_tokens > 0
    assert result.samples == summary.samples == SAMPLES_PER_TOKEN * summary.semantic_tokens
    assert result.sample_rate == 16000
    assert len(result.chunk_offsets) >= 2, "audio should arrive in several chunks, not at the end"
    assert result.first_audio_seconds > 0
    assert summary.real_time_factor > 0 and summary.first_audio_seconds > 0
    assert summary.request_id
    out = tmp_path / "out.wav"
    write_wav_pcm16(out, result.pcm16, result.sample_rate)
    audio, rate = soundfile.read(out, dtype="int16")
    assert rate == 16000 and audio.shape == (result.samples,)
    assert np.abs(audio).max() > 100, "the tiny pack's audio should not be silent"


def test_controllable_voice_streams_its_own_globals(stack: LocalStack) -> None:
    style = generator_pb2.VoiceStyle(gender=generator_pb2.VoiceStyle.MALE, pitch=4, speed=0)
    result = synthesize(
        stack.ports.address("gateway"),
        "A controllable voice.",
        voice="male",
        style=style,
        sampling=sampling(60),
    )
    assert result.samples == SAMPLES_PER_TOKEN * result.summary.semantic_tokens > 0


def test_vocoder_stream_equals_offline_decode(stack: LocalStack, tiny_pack: Pack) -> None:
    global_ids, tokens = generate_tokens(
        stack,
        "Streaming must equal offline decoding.",
        global_tokens=generator_pb2.GlobalTokens(ids=list(range(100, 132))),
        sampling=sampling(157, seed=3, exact=True),
    )
    assert len(tokens) == 157
    chunks = decode_stream(stack, decode_requests(global_ids, tokens))
    assert chunks[-1].final and not any(c.final for c in chunks[:-1])
    offsets = [c.sample_offset for c in chunks]
    streamed = np.concatenate([np.frombuffer(c.pcm_f32, dtype="<f4") for c in chunks])
    sizes = [len(c.pcm_f32) // 4 for c in chunks]
    assert offsets == list(np.cumsum([0, *sizes[:-1]])), "chunks must tile the stream without gaps"
    offline = offline_decode(tiny_pack, global_ids, tokens)
    assert streamed.shape == offline.shape == (157 * SAMPLES_PER_TOKEN,)
    assert np.max(np.abs(streamed - offline)) <= STREAM_TOLERANCE


def test_gateway_audio_equals_offline_decode_of_the_same_tokens(stack: LocalStack, tiny_pack: Pack) -> None:
    text, seed = "Seeded sampling makes both calls produce the same tokens.", 11
    default_ids = list(VoiceRegistry.builtin().get("default").parts.global_ids)  # type: ignore[union-attr]
    global_ids, tokens = generate_tokens(
        stack,
        text,
        global_tokens=generator_pb2.GlobalTokens(ids=default_ids),
        sampling=sampling(90, seed=seed),
    )
    result = synthesize(stack.ports.address("gateway"), text, sampling=sampling(90, seed=seed))
    assert result.summary.semantic_tokens == len(tokens)
    offline = offline_decode(tiny_pack, global_ids, tokens)
    expected = np.rint(np.clip(offline, -1, 1) * 32767).astype(np.int32)
    got = np.frombuffer(result.pcm16, dtype="<i2").astype(np.int32)
    assert got.shape == expected.shape
    # PCM16 rounding can move a sample by one step where the float difference straddles a boundary.
    assert np.max(np.abs(got - expected)) <= 1 + STREAM_TOLERANCE * 32767


def test_cancelling_the_client_aborts_generation_and_frees_the_stream(stack: LocalStack) -> None:
    generator_metrics = stack.ports.metrics_url("generator")
    vocoder_metrics = stack.ports.metrics_url("vocoder")
    cancelled_before = scrape(generator_metrics).get(
        'voxserve_generator_requests_total{outcome="cancelled"}', 0
    )
    with grpc.insecure_channel(stack.ports.address("gateway")) as channel:
        stub = speech_pb2_grpc.SpeechStub(channel)
        # Exactly 550 tokens: a random model that ended by itself before the first audio reached
        # the client would leave nothing to cancel.
        request = speech_pb2.SynthesizeRequest(
            text="A long utterance that we will cut short.", sampling=sampling(550, exact=True)
        )
        call = stub.Synthesize(request, timeout=60)
        first = next(call)
        assert first.HasField("audio")
        during_gen = scrape(generator_metrics)["voxserve_generator_engine_requests"]
        during_voc = scrape(vocoder_metrics)["voxserve_vocoder_active_streams"]
        call.cancel()
    assert during_gen >= 1 and during_voc >= 1
    gen, voc = wait_idle(stack, cancelled=cancelled_before + 1)
    assert gen["voxserve_generator_engine_requests"] == 0
    assert voc["voxserve_vocoder_active_streams"] == 0
    assert gen.get(CANCELLED, 0) == cancelled_before + 1


CANCELLED = 'voxserve_generator_requests_total{outcome="cancelled"}'


def wait_idle(
    stack: LocalStack, seconds: float = 15, cancelled: float = 0
) -> tuple[dict[str, float], dict[str, float]]:
    """The generator's and vocoder's metrics once neither has live work and the generator has
    counted at least `cancelled` cancelled calls (or at the deadline). A call's engine request is
    aborted as its handler unwinds, and the handler counts its outcome after that, so the two
    figures may be read a moment apart."""
    deadline = time.monotonic() + seconds
    while True:
        gen = scrape(stack.ports.metrics_url("generator"))
        voc = scrape(stack.ports.metrics_url("vocoder"))
        idle = gen["voxserve_generator_engine_requests"] == 0 and voc["voxserve_vocoder_active_streams"] == 0
        if (idle and gen.get(CANCELLED, 0) >= cancelled) or time.monotonic() > deadline:
            return gen, voc
        time.sleep(0.1)


def test_a_client_deadline_reaches_generator_and_vocoder(stack: LocalStack) -> None:
    timed_out_before = scrape(stack.ports.metrics_url("generator")).get(
        'voxserve_generator_requests_total{outcome="cancelled"}', 0
    )
    with pytest.raises(grpc.RpcError) as info:
        synthesize(
            stack.ports.address("gateway"), "Too slow for its deadline.", sampling=sampling(550), timeout=0.8
        )
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    gen, voc = wait_idle(stack, cancelled=timed_out_before + 1)
    assert gen["voxserve_generator_engine_requests"] == 0
    assert voc["voxserve_vocoder_active_streams"] == 0
    assert gen.get(CANCELLED, 0) == timed_out_before + 1


def test_request_id_travels_through_all_three_services(stack: LocalStack) -> None:
    request_id = f"trace-{time.monotonic_ns()}"
    result = synthesize(
        stack.ports.address("gateway"),
        "Follow this request.",
        sampling=sampling(12),
        metadata=[("x-request-id", request_id)],
    )
    assert result.summary.request_id == request_id
    assert stack.log_dir is not None
    deadline = time.monotonic() + 5
    for service in ("gateway", "generator", "vocoder"):
        log = stack.log_dir / f"{service}.log"
        while request_id not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = [json.loads(line) for line in log.read_text().splitlines() if request_id in line]
        assert lines, f"{service} logged nothing for {request_id}"
        assert all(line["request_id"] == request_id and line["service"] == service for line in lines)
