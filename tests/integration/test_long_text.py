"""Long text, streamed text, named voices and output formats through the real services.

A second gateway process with a small segment budget and a voice registry file runs in front of
the session's generator and vocoder, so several segments are cheap to produce.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import soundfile
import soxr
import yaml

from tests.integration.test_end_to_end import wait_idle
from voxserve.client import FLUSH, synthesize, synthesize_stream
from voxserve.families.pack import Pack
from voxserve.gateway.config import load
from voxserve.gateway.pipeline import SegmentStats, remote_runner
from voxserve.gateway.synthesis import Synthesis
from voxserve.gateway.voices import VoiceRegistry
from voxserve.stack import LocalStack, wait_serving
from voxserve.v1 import generator_pb2, generator_pb2_grpc, speech_pb2, speech_pb2_grpc, vocoder_pb2_grpc

SAMPLES_PER_TOKEN = 320
FADE = 800  # 50 ms at 16 kHz
SEGMENT_MAX_CHARS = 60
TEXT = (
    "The first sentence is short. The second one is a little longer than that. "
    "And a third follows, so the text needs several segments!"
)
FIXED_IDS = list(range(500, 532))


def sampling(max_tokens: int, seed: int = 5) -> generator_pb2.SamplingParams:
    return generator_pb2.SamplingParams(max_tokens=max_tokens, min_tokens=max_tokens, seed=seed)


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("voices") / "voices.yaml"
    document = {
        "voices": {
            "default": {"description": "fixed", "pack": "tiny-spark", "global_ids": FIXED_IDS},
            "narrator": {"description": "controllable", "pack": "tiny-spark", "gender": "male", "pitch": 1},
        }
    }
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def gateway(stack: LocalStack, tiny_pack: Pack, registry_file: Path, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    ports = stack.ports.fresh("gateway")
    env = {
        "VOXSERVE_GATEWAY_SEGMENT_MAX_CHARS": str(SEGMENT_MAX_CHARS),
        "VOXSERVE_GATEWAY_VOICES_FILE": str(registry_file),
        "VOXSERVE_GATEWAY_MAX_STREAM_TEXT_CHARS": "400",
    }
    local = LocalStack(tiny_pack.root, ports, env=env, log_dir=tmp_path_factory.mktemp("gateway-logs"))
    process = local.start_service("gateway")
    try:
        wait_serving(ports.address("gateway"), 60, process)
        yield ports.address("gateway")
    finally:
        local.stop()


def stitched_samples(summary: speech_pb2.Summary) -> int:
    """What the stitched stream must hold: every segment's samples less one fade per seam."""
    segments = summary.timeline.segments
    return sum(s.samples for s in segments) - FADE * (len(segments) - 1)


def test_long_text_is_split_pipelined_and_stitched_without_losing_samples(gateway: str) -> None:
    result = synthesize(gateway, TEXT, sampling=sampling(30))
    summary = result.summary
    timings = summary.timeline.segments
    assert summary.segments == len(timings) == 3
    assert [t.semantic_tokens for t in timings] == [30, 30, 30]
    assert all(t.samples == 30 * SAMPLES_PER_TOKEN for t in timings)
    assert sum(t.characters for t in timings) <= len(TEXT)
    assert result.samples == summary.samples == stitched_samples(summary) == 90 * 320 - 2 * FADE
    assert len(result.data) == 2 * result.samples
    # Pipelined: the second segment was started before the first one's audio was all sent.
    assert timings[1].started_seconds < timings[0].finished_seconds
    assert 0 < summary.timeline.first_token_seconds <= summary.timeline.first_audio_seconds
    assert summary.timeline.first_audio_seconds <= summary.timeline.done_seconds
    assert abs(summary.timeline.received_unix_seconds - time.time()) < 60
    assert summary.semantic_tokens == 90
    assert summary.finish_reason == generator_pb2.GenerateResult.LENGTH


async def test_every_segment_speaks_in_the_first_segments_voice(stack: LocalStack) -> None:
    """Through the real generator: later segments echo the global ids the first one generated."""
    voice = VoiceRegistry.builtin().get("female")
    assert voice is not None
    async with (
        grpc.aio.insecure_channel(stack.ports.address("generator")) as gen,
        grpc.aio.insecure_channel(stack.ports.address("vocoder")) as voc,
    ):
        runner = remote_runner([generator_pb2_grpc.GeneratorStub(gen)], [vocoder_pb2_grpc.VocoderStub(voc)])
        request = speech_pb2.SynthesizeRequest(
            voice="female", sampling=generator_pb2.SamplingParams(max_tokens=20)
        )
        synth = Synthesis(runner, voice, request, load())

        async def texts():  # type: ignore[no-untyped-def]
            for text in ("One voice.", "Two segments.", "Three of them."):
                yield text

        audio = [pcm async for pcm in synth.audio(texts())]
    stats: list[SegmentStats] = [s.stats for s in synth.segments]
    assert len(stats) == 3 and len(stats[0].global_ids) == 32
    assert all(s.global_ids == stats[0].global_ids for s in stats[1:])
    assert sum(a.size for a in audio) == sum(s.samples for s in synth.segments) - 2 * FADE


def test_named_voices_come_from_the_registry_file(gateway: str, registry_file: Path) -> None:
    with grpc.insecure_channel(gateway) as channel:
        voices = (
            speech_pb2_grpc.SpeechStub(channel).ListVoices(speech_pb2.ListVoicesRequest(), timeout=10).voices
        )
    assert [(v.id, v.family, v.sample_rate, v.pack, v.controllable) for v in voices] == [
        ("default", "spark", 16000, "tiny-spark", False),
        ("narrator", "spark", 16000, "tiny-spark", True),
    ]
    for args in (["--address", gateway], ["--file", str(registry_file)]):
        printed = subprocess.run(
            [sys.executable, "-m", "voxserve.cli", "voices", "--json", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert [v["id"] for v in json.loads(printed)] == ["default", "narrator"]


def read_back(result, encoding: int, rate: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Decodes the call's bytes with libsndfile, which shares no code with the gateway's encoders."""
    if encoding == speech_pb2.MULAW:
        data, _ = soundfile.read(
            io.BytesIO(result.data),
            format="RAW",
            subtype="ULAW",
            samplerate=rate,
            channels=1,
            dtype="float32",
        )
    else:
        data, read_rate = soundfile.read(io.BytesIO(result.data), dtype="float32")
        assert read_rate == rate
    return data


@pytest.mark.parametrize(
    ("encoding", "requested", "rate"),
    [
        (speech_pb2.WAV, 0, 16000),
        (speech_pb2.WAV, 44100, 44100),
        (speech_pb2.MULAW, 0, 8000),
        (speech_pb2.OGG_OPUS, 0, 48000),
        (speech_pb2.OGG_OPUS, 16000, 16000),
        (speech_pb2.PCM16, 22050, 22050),
    ],
)
def test_output_encodings_decode_back(gateway: str, encoding: int, requested: int, rate: int) -> None:
    pcm = synthesize(gateway, "A short one. And another.", sampling=sampling(25))
    result = synthesize(
        gateway, "A short one. And another.", sampling=sampling(25), encoding=encoding, sample_rate=requested
    )
    assert result.sample_rate == rate
    native = pcm.summary.samples
    assert result.summary.samples == pytest.approx(native * rate / 16000, abs=1)
    if encoding == speech_pb2.PCM16:
        decoded = np.frombuffer(result.data, "<i2").astype(np.float32) / 32767
    else:
        decoded = read_back(result, encoding, rate)
    assert decoded.size == result.summary.samples
    reference = np.frombuffer(pcm.data, "<i2").astype(np.float32) / 32767
    if rate != 16000:
        reference = soxr.resample(reference, 16000, rate)
    assert reference.size == decoded.size
    if encoding in (speech_pb2.PCM16, speech_pb2.WAV):
        assert np.max(np.abs(decoded - np.clip(reference, -1, 1))) <= 2 / 32767
    elif encoding == speech_pb2.MULAW:
        assert snr_db(reference, decoded) > 30
    else:  # Opus is perceptual: compare levels, not waveforms
        level = np.sqrt(np.mean(reference**2))
        assert np.sqrt(np.mean(decoded**2)) == pytest.approx(level, rel=0.3)


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    noise = np.sum((reference - other) ** 2)
    return float(10 * np.log10(np.sum(reference**2) / noise))


def test_streamed_text_starts_speaking_before_the_input_ends(gateway: str) -> None:
    text = "Streams arrive in pieces. Each sentence is spoken once complete. The end"
    deltas = [text[i : i + 3] for i in range(0, len(text), 3)]
    started = time.monotonic()
    last_sent: list[float] = []

    def timed() -> Iterator[str]:
        yield from deltas[:-1]
        last_sent.append(time.monotonic() - started)
        yield deltas[-1]

    result = synthesize_stream(gateway, timed(), sampling=sampling(20), delay_seconds=0.05)
    summary = result.summary
    assert summary.segments == 3
    # The first sentence is complete at the 9th of 24 deltas; its segment starts long before the
    # last delta has been sent.
    assert summary.timeline.segments[0].started_seconds < last_sent[0] - 0.05
    assert [t.characters for t in summary.timeline.segments] == [25, 38, 7]
    assert result.samples == summary.samples == stitched_samples(summary) == 60 * 320 - 2 * FADE


def test_flush_speaks_an_unfinished_sentence_at_once(gateway: str) -> None:
    result = synthesize_stream(
        gateway, ["No full stop here", FLUSH, " but more text follows."], sampling=sampling(10)
    )
    assert [t.characters for t in result.summary.timeline.segments] == [17, 22]


def expect_invalid(call, *needles: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    for needle in needles:
        assert needle in info.value.details(), info.value.details()


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        ({"encoding": 9}, ["encoding", "PCM16", "OGG_OPUS"]),
        ({"sample_rate": 7000}, ["sample_rate", "8000", "48000"]),
        ({"sample_rate": 96000}, ["sample_rate", "48000"]),
        ({"encoding": speech_pb2.OGG_OPUS, "sample_rate": 22050}, ["sample_rate", "OGG_OPUS", "24000"]),
        ({"text": "  <laugh>  <sigh> "}, ["nothing to speak"]),
        ({"text": "\n\t "}, ["text is empty"]),
        ({"voice": "nobody"}, ["voice 'nobody' is unknown", "narrator"]),
    ],
)
def test_bad_requests_name_the_field(gateway: str, kwargs: dict, needles: list[str]) -> None:
    request = speech_pb2.SynthesizeRequest(**{"text": "Hello.", **kwargs})
    with grpc.insecure_channel(gateway) as channel:
        stub = speech_pb2_grpc.SpeechStub(channel)
        expect_invalid(lambda: list(stub.Synthesize(request, timeout=30)), *needles)


def stream_call(gateway: str, messages: list[speech_pb2.SynthesizeStreamRequest]) -> None:
    with grpc.insecure_channel(gateway) as channel:
        list(speech_pb2_grpc.SpeechStub(channel).SynthesizeStream(iter(messages), timeout=30))


CONFIG = speech_pb2.SynthesizeStreamRequest(
    config=speech_pb2.SynthesizeRequest(sampling=generator_pb2.SamplingParams(max_tokens=10))
)


def text(delta: str) -> speech_pb2.SynthesizeStreamRequest:
    return speech_pb2.SynthesizeStreamRequest(text=delta)


END = speech_pb2.SynthesizeStreamRequest(end=speech_pb2.EndOfInput())


@pytest.mark.parametrize(
    ("messages", "needles"),
    [
        ([text("Hello.")], ["config", "first message"]),
        ([CONFIG, text("Hello there."), END, text("More.")], ["text", "after end of input"]),
        ([CONFIG, *[text("x" * 50 + ". ")] * 8, END], ["text", "416", "400"]),
        ([CONFIG, text("<laugh> "), END], ["nothing to speak"]),
        ([CONFIG, CONFIG, END], ["config", "only the first"]),
    ],
)
def test_bad_streams_name_the_field(gateway: str, messages: list, needles: list[str]) -> None:
    expect_invalid(lambda: stream_call(gateway, messages), *needles)


def test_the_gateway_keeps_serving_after_bad_input(gateway: str) -> None:
    result = synthesize(gateway, "Still here.", sampling=sampling(10))
    assert result.samples == 10 * SAMPLES_PER_TOKEN


def test_cancelling_a_text_stream_stops_every_segment(gateway: str, stack: LocalStack) -> None:
    quiet = threading.Event()

    def requests() -> Iterator[speech_pb2.SynthesizeStreamRequest]:
        yield speech_pb2.SynthesizeStreamRequest(
            config=speech_pb2.SynthesizeRequest(sampling=generator_pb2.SamplingParams(max_tokens=400))
        )
        yield text("A first sentence to speak. A second one to generate alongside it. ")
        quiet.wait(30)  # the client sends no end of input; it cancels instead

    with grpc.insecure_channel(gateway) as channel:
        call = speech_pb2_grpc.SpeechStub(channel).SynthesizeStream(requests(), timeout=60)
        assert next(call).HasField("audio")
        call.cancel()
        quiet.set()
    gen, voc = wait_idle(stack)
    assert gen["voxserve_generator_engine_requests"] == 0
    assert voc["voxserve_vocoder_active_streams"] == 0
