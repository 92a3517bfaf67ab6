"""The baseline pipeline: its decode schedule, what it emits after each decode, and the runner
driven by a fake engine (plus one slow test against a real engine behind the Speech API)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch

from bench.baseline import MonolithicRunner
from bench.seed_loop import (
    CROSSFADE_SAMPLES,
    SeedStitcher,
    baseline_decode_windows,
    crossfade,
    decode_due,
    decode_span,
    fade_in_weights,
)
from voxserve.client import synthesize
from voxserve.families.pack import Pack
from voxserve.families.registry import family_named
from voxserve.gateway import config as gateway_config
from voxserve.gateway.audio import f32_from_bytes
from voxserve.gateway.pipeline import SegmentJob, SegmentStats, UpstreamError
from voxserve.gateway.servicer import SpeechServicer
from voxserve.gateway.voice_directory import VoiceDirectory
from voxserve.gateway.voices import VoiceRegistry
from voxserve.generator.frames import Frame, GenerationResult
from voxserve.generator.generate_args import GenerateArgs, Sampling, Style
from voxserve.random_packs.tiny_bicodec import write_tiny_bicodec
from voxserve.stack import free_port, wait_serving
from voxserve.v1 import generator_pb2, speech_pb2, speech_pb2_grpc, vocoder_pb2
from voxserve.vocoder.codecs.base import VoiceConditioning
from voxserve.vocoder.codecs.bicodec import BiCodec

SPT = 320
GLOBALS = list(range(32))


def tokens_decoded(spans: list[tuple[int, int]]) -> int:
    return sum(end - start for start, end in spans)


# -- schedule --------------------------------------------------------------------------------------


def test_first_decode_at_10_tokens_then_every_48() -> None:
    assert baseline_decode_windows(200) == [(0, 10), (0, 58), (0, 106), (0, 154), (0, 200)]


def test_no_decode_before_the_first_10_tokens_except_the_closing_one() -> None:
    assert baseline_decode_windows(9) == [(0, 9)]
    assert baseline_decode_windows(0) == []


def test_ending_on_a_decode_step_leaves_no_closing_decode() -> None:
    spans = baseline_decode_windows(250)  # 250 = 10 + 5 x 48
    assert spans[-2:] == [(0, 202), (0, 250)]
    assert len(spans) == 6


def test_frames_of_several_tokens_decode_at_frame_boundaries() -> None:
    assert not decode_due(9, 0)
    assert decode_due(12, 0)
    assert not decode_due(57, 10)
    assert decode_due(60, 10)


def test_windowed_decodes_are_bounded_but_the_closing_one_takes_the_whole_buffer() -> None:
    spans = baseline_decode_windows(1000, 128)
    *loop, closing = spans
    assert all(end - start <= 128 for start, end in loop)
    assert [span for span in loop if span[1] > 128] == [(e - 128, e) for e in range(154, 1000, 48)]
    assert closing == (0, 1000)
    assert decode_span(100, 128) == (0, 100)


def test_whole_buffer_tokens_decoded_grow_quadratically() -> None:
    # Doubling the length about quadruples the work: per audio token the cost grows linearly.
    for n in (500, 1000, 1500):
        ratio = tokens_decoded(baseline_decode_windows(2 * n)) / tokens_decoded(baseline_decode_windows(n))
        assert 3.3 < ratio < 4.3
    per_token = {n: tokens_decoded(baseline_decode_windows(n)) / n for n in (250, 3000)}
    assert per_token[3000] > 8 * per_token[250]


def test_windowed_tokens_decoded_grow_linearly() -> None:
    for n in (500, 1000, 1500):
        ratio = tokens_decoded(baseline_decode_windows(2 * n, 128)) / tokens_decoded(
            baseline_decode_windows(n, 128)
        )
        assert 1.8 < ratio < 2.5


# -- crossfade and emission ------------------------------------------------------------------------


def test_crossfade_is_50_ms_at_16_khz() -> None:
    assert CROSSFADE_SAMPLES == 800


def test_fade_weights_are_linear_from_0_to_1() -> None:
    w = fade_in_weights(800)
    assert w[0] == 0.0 and w[-1] == 1.0
    np.testing.assert_allclose(np.diff(w), 1 / 799, rtol=1e-4)


def test_crossfade_without_a_tail_holds_back_the_last_fade() -> None:
    audio = np.arange(3000, dtype=np.float32)
    out, tail = crossfade(None, audio, 800)
    np.testing.assert_array_equal(out, audio[:2200])
    np.testing.assert_array_equal(tail, audio[2200:])


def test_crossfade_blends_the_tail_into_the_start_of_the_new_audio() -> None:
    tail = np.ones(800, dtype=np.float32)
    audio = np.zeros(2000, dtype=np.float32)
    out, new_tail = crossfade(tail, audio, 800)
    assert out.size == 1200 and new_tail.size == 800
    np.testing.assert_allclose(out[:800], 1 - fade_in_weights(800))
    assert not out[800:].any()


def test_crossfade_shorter_than_the_fade_holds_everything() -> None:
    out, tail = crossfade(None, np.ones(300, dtype=np.float32), 800)
    assert out.size == 0 and tail.size == 300


def stitch(n_tokens: int, window: int | None, reference: np.ndarray) -> tuple[list[np.ndarray], SeedStitcher]:
    """Run the schedule with a decoder whose output is `reference` cut to each span (a decoder
    that never revises its past), and return everything emitted plus the stitcher."""
    stitcher = SeedStitcher()
    out: list[np.ndarray] = []
    last = 0
    for start, end in baseline_decode_windows(n_tokens, window):
        windowed = start > 0
        out.append(
            stitcher.push(reference[start * SPT : end * SPT], windowed=windowed, new_tokens=end - last)
        )
        last = end
    out.append(stitcher.flush())
    return out, stitcher


def test_whole_buffer_emission_reproduces_the_audio_exactly() -> None:
    n = 300
    ref = np.random.default_rng(0).standard_normal(n * SPT).astype(np.float32)
    out, stitcher = stitch(n, None, ref)
    # Each decode sends all but the last 50 ms of what it decoded; the tail goes out at the end.
    sent = np.cumsum([o.size for o in out[:-1]])
    assert sent.tolist() == [end * SPT - 800 for _, end in baseline_decode_windows(n)]
    np.testing.assert_allclose(np.concatenate(out), ref, atol=1e-6)
    assert stitcher.emitted == n * SPT


def test_windowed_emission_loses_50_ms_per_windowed_decode_when_ending_on_a_step() -> None:
    # 250 tokens: decodes at 10, 58, 106 (whole) and 154, 202, 250 (windowed), no closing decode.
    ref = np.arange(250 * SPT, dtype=np.float64)
    _, stitcher = stitch(250, 128, ref)
    assert stitcher.emitted == 250 * SPT - 3 * CROSSFADE_SAMPLES


def test_windowed_emission_replays_audio_in_the_closing_decode() -> None:
    n = 300  # decodes at 10 .. 298 (3 whole, 3 + ... windowed) and a closing whole-buffer decode
    ref = np.arange(n * SPT, dtype=np.float64)
    spans = baseline_decode_windows(n, 128)
    windowed = sum(1 for start, _ in spans if start > 0)
    out, stitcher = stitch(n, 128, ref)
    before_closing = sum(o.size for o in out[:-2])
    assert before_closing == spans[-2][1] * SPT - CROSSFADE_SAMPLES * (1 + windowed)
    # The closing decode restarts at the count of samples sent, behind where playback got to.
    closing = out[-2]
    assert closing[CROSSFADE_SAMPLES] == before_closing + CROSSFADE_SAMPLES
    assert stitcher.emitted == n * SPT


# -- the runner on a fake engine -------------------------------------------------------------------


@dataclass
class FakeGenerator:
    """Stands in for `TokenGenerator`: a voice frame, semantic frames, then a result."""

    semantic: list[int]
    tokens_per_frame: int = 1
    requests: list[GenerateArgs] = field(default_factory=list)
    closed: bool = False

    async def generate(self, args: GenerateArgs, request_id: str) -> AsyncIterator[Frame]:
        self.requests.append(args)
        try:
            yield Frame(global_ids=list(args.global_ids or GLOBALS))
            for i in range(0, len(self.semantic), self.tokens_per_frame):
                await asyncio.sleep(0)
                yield Frame(semantic_ids=self.semantic[i : i + self.tokens_per_frame])
            yield Frame(
                result=GenerationResult(
                    finish_reason="stop", prompt_tokens=7, semantic_tokens=len(self.semantic)
                )
            )
        finally:
            self.closed = True


@pytest.fixture(scope="module")
def codec(tmp_path_factory: pytest.TempPathFactory) -> BiCodec:
    pack = tmp_path_factory.mktemp("baseline-bicodec")
    write_tiny_bicodec(pack, seed=0)
    return BiCodec.from_pack(pack)


def semantic_tokens(n: int, codec: BiCodec) -> list[int]:
    return torch.randint(0, codec.token_vocab_size, (n,), generator=torch.Generator().manual_seed(n)).tolist()


def request(text: str = "Hello there.", **kwargs: object) -> generator_pb2.GenerateRequest:
    msg = generator_pb2.GenerateRequest(text=text, **kwargs)  # type: ignore[arg-type]
    if not msg.WhichOneof("voice"):
        msg.global_tokens.ids.extend(GLOBALS)
    return msg


# The family whose codec a job names: the baseline serves BiCodec (spark) only.
FAMILY_OF_CODEC = {"bicodec": family_named("spark"), "snac": family_named("orpheus")}


def job(
    msg: generator_pb2.GenerateRequest, codec_name: str = "bicodec", stats: SegmentStats | None = None
) -> SegmentJob:
    return SegmentJob(msg, FAMILY_OF_CODEC[codec_name], seed=0, stats=stats or SegmentStats())


async def run(
    runner: MonolithicRunner, msg: generator_pb2.GenerateRequest, codec_name: str = "bicodec"
) -> tuple[list[vocoder_pb2.AudioChunk], SegmentStats]:
    segment = job(msg, codec_name)
    chunks = [c async for c in runner(segment)]
    return chunks, segment.stats


def check_contiguous(chunks: list[vocoder_pb2.AudioChunk]) -> int:
    offset = 0
    for chunk in chunks:
        assert chunk.sample_offset == offset
        assert chunk.sample_rate == 16000
        offset += len(chunk.pcm_f32) // 4
    assert [c.final for c in chunks] == [False] * (len(chunks) - 1) + [True]
    return offset


async def test_runner_streams_every_sample_in_whole_buffer_mode(codec: BiCodec) -> None:
    tokens = semantic_tokens(130, codec)
    runner = MonolithicRunner(FakeGenerator(tokens), codec)
    chunks, stats = await run(runner, request())
    assert check_contiguous(chunks) == 130 * SPT
    assert len(chunks) == 5  # decodes at 10, 58, 106, the closing one at 130, then the tail
    conditioning = codec.condition(VoiceConditioning(tuple(GLOBALS))).unsqueeze(0)
    first = codec.decode(torch.tensor([tokens[:10]]), conditioning)[0].numpy()
    np.testing.assert_array_equal(f32_from_bytes(chunks[0].pcm_f32), first[: 10 * SPT - 800])
    assert stats.first_token_at is not None
    assert stats.result.semantic_tokens == 130
    assert stats.result.finish_reason == generator_pb2.GenerateResult.STOP


async def test_runner_windowed_mode_comes_out_short_when_ending_on_a_decode_step(codec: BiCodec) -> None:
    runner = MonolithicRunner(FakeGenerator(semantic_tokens(250, codec)), codec, window_tokens=128)
    chunks, _ = await run(runner, request())
    assert check_contiguous(chunks) == 250 * SPT - 3 * CROSSFADE_SAMPLES


async def test_runner_decodes_at_frame_boundaries(codec: BiCodec) -> None:
    # Frames of 7 tokens: decodes at 14, 63, 112 and the closing one at 120.
    runner = MonolithicRunner(FakeGenerator(semantic_tokens(120, codec), tokens_per_frame=7), codec)
    chunks, _ = await run(runner, request())
    sizes = [len(c.pcm_f32) // 4 for c in chunks]
    assert sizes == [14 * SPT - 800, 49 * SPT, 49 * SPT, 8 * SPT, 800]


async def test_runner_parses_the_request_like_the_generator(codec: BiCodec) -> None:
    fake = FakeGenerator(semantic_tokens(12, codec))
    runner = MonolithicRunner(fake, codec)
    style = generator_pb2.VoiceStyle(gender=generator_pb2.VoiceStyle.MALE, pitch=3, speed=1)
    sampling = generator_pb2.SamplingParams(temperature=0.5, max_tokens=40, seed=9)
    chunks, _ = await run(runner, request("  Hi.  ", style=style, sampling=sampling))
    assert check_contiguous(chunks) == 12 * SPT
    (seen,) = fake.requests
    assert seen.text == "Hi."
    assert seen.global_ids is None
    assert seen.style == Style(gender="male", pitch=3, speed=1)
    assert seen.sampling == Sampling(temperature=0.5, max_tokens=40, seed=9)


@pytest.mark.parametrize(
    ("msg", "codec_name", "message"),
    [
        (request("   "), "bicodec", "text is empty"),
        (request("x" * 2001), "bicodec", "the limit is 2000"),
        (request(global_tokens=generator_pb2.GlobalTokens(ids=[1, 2])), "bicodec", "exactly 32"),
        (request(sampling=generator_pb2.SamplingParams(max_tokens=5000)), "bicodec", "max_tokens"),
        (request(), "snac", "unknown"),
    ],
)
async def test_runner_rejects_bad_requests(
    codec: BiCodec, msg: generator_pb2.GenerateRequest, codec_name: str, message: str
) -> None:
    runner = MonolithicRunner(FakeGenerator([]), codec)
    with pytest.raises(UpstreamError, match=message) as info:
        await run(runner, msg, codec_name)
    assert info.value.status == grpc.StatusCode.INVALID_ARGUMENT


async def test_runner_closes_the_engine_request_when_the_caller_leaves(codec: BiCodec) -> None:
    fake = FakeGenerator(semantic_tokens(200, codec))
    stream = MonolithicRunner(fake, codec)(job(request()))
    await anext(stream)
    assert not fake.closed
    await stream.aclose()  # type: ignore[attr-defined]
    assert fake.closed


async def test_runner_with_no_tokens_ends_with_an_empty_final_chunk(codec: BiCodec) -> None:
    chunks, _ = await run(MonolithicRunner(FakeGenerator([]), codec), request())
    assert len(chunks) == 1 and chunks[0].final and not chunks[0].pcm_f32


async def test_runner_reports_the_voice_the_tokens_and_the_end_of_generation(codec: BiCodec) -> None:
    # The gateway's Synthesis waits on these: without `generated` the call never ends.
    stats = SegmentStats()
    stream = MonolithicRunner(FakeGenerator(semantic_tokens(30, codec)), codec)(job(request(), stats=stats))
    first = await anext(stream)
    assert stats.voice_known.is_set() and stats.global_ids == tuple(GLOBALS)
    assert not stats.generated.is_set()
    assert 10 <= stats.tokens_forwarded < 30
    rest = [chunk async for chunk in stream]
    assert check_contiguous([first, *rest]) == 30 * SPT
    assert stats.generated.is_set()
    assert stats.tokens_forwarded == 30


@pytest.fixture
async def baseline_speech(codec: BiCodec) -> AsyncIterator[tuple[speech_pb2_grpc.SpeechStub, FakeGenerator]]:
    """The baseline's Speech service (as `python -m bench.baseline` serves it) on a fake engine;
    segments of at most 40 characters, so that each sentence below is one."""
    fake = FakeGenerator(semantic_tokens(60, codec))
    config = gateway_config.load(segment_max_chars=40, crossfade_ms=50.0)
    servicer = SpeechServicer(VoiceDirectory(VoiceRegistry.builtin()), MonolithicRunner(fake, codec), config)
    server = grpc.aio.server()
    speech_pb2_grpc.add_SpeechServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield speech_pb2_grpc.SpeechStub(channel), fake
    finally:
        await server.stop(None)


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("Hello there, a short test.", 1),
        ("Hello there, a short test. A second sentence follows it. And then a third one ends it.", 3),
    ],
)
async def test_served_call_ends_after_its_last_audio(
    baseline_speech: tuple[speech_pb2_grpc.SpeechStub, FakeGenerator], text: str, segments: int
) -> None:
    stub, fake = baseline_speech
    request = speech_pb2.SynthesizeRequest(text=text, voice="female", encoding=speech_pb2.PCM16)
    # The fake engine answers at once: a call that is still open after a few seconds hangs.
    call = stub.Synthesize(request, timeout=10)
    responses = [response async for response in call]
    assert await call.code() == grpc.StatusCode.OK
    summary = responses[-1].summary
    assert summary.segments == segments and summary.semantic_tokens == 60 * segments
    pcm = sum(len(r.audio.data) for r in responses if r.HasField("audio")) // 2
    # Each seam between two segments crossfades 50 ms.
    assert pcm == summary.samples == segments * 60 * SPT - (segments - 1) * CROSSFADE_SAMPLES
    # Later segments speak in the voice the first one generated.
    assert [seen.global_ids for seen in fake.requests] == [None] + [tuple(GLOBALS)] * (segments - 1)


# -- the served baseline on a real engine ----------------------------------------------------------


@pytest.mark.slow
def test_served_baseline_streams_audio_in_several_chunks(tiny_pack: Pack, tmp_path: Path) -> None:
    port = free_port()
    with open(tmp_path / "baseline.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.baseline", "--pack", str(tiny_pack.root), "--port", str(port)],
            stdout=log,
            stderr=log,
            cwd=Path(__file__).resolve().parents[2],
        )
        try:
            wait_serving(f"127.0.0.1:{port}", 420, process)
            address = f"127.0.0.1:{port}"
            synthesize(address, "Warm up.", sampling=generator_pb2.SamplingParams(max_tokens=20), timeout=120)
            sampling = generator_pb2.SamplingParams(max_tokens=300, min_tokens=300, seed=3)
            result = synthesize(address, "The baseline speaks.", sampling=sampling, timeout=120)
        except Exception:
            print((tmp_path / "baseline.log").read_text()[-4000:])
            raise
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert result.summary.semantic_tokens == 300
    assert result.samples == 300 * SPT == result.summary.samples
    # The engine may hand over several tokens per step while a decode runs, so the decode count
    # varies; the first decode, at least one later one and the held tail always make three.
    assert len(result.chunk_offsets) >= 3
    assert result.chunk_offsets == sorted(result.chunk_offsets)
    assert result.summary.first_audio_seconds > 0
    print("chunk offsets:", result.chunk_offsets)
