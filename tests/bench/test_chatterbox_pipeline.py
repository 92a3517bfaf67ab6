"""The Chatterbox pipelining benchmark's measurements, against fake services (no stack): what each
mode sends and times, how the runs interleave, and how the figures are summed up."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import cmd_chatterbox, parser
from bench.chatterbox_pipeline import (
    MODES,
    RunFigures,
    chatterbox_voice,
    generator_times,
    interleave,
    pipelined,
    sampling_params,
    segment_of,
    summarize,
    table,
    wait_all,
    with_generator_times,
)
from bench.corpus import Text
from voxserve import client
from voxserve.families.pack import Pack
from voxserve.random_packs.writer import write_random_pack
from voxserve.v1 import generator_pb2, speech_pb2, vocoder_pb2

TEXT = Text("medium-0", "medium", "A sentence to speak.")
TOKEN_SAMPLES = 960
FRAME_SECONDS = 0.01


class FakeGenerator:
    """Yields `tokens` speech tokens, 5 per frame, FRAME_SECONDS apart, then the result."""

    def __init__(self, tokens: int):
        self.tokens = tokens
        self.requests: list[generator_pb2.GenerateRequest] = []

    def Generate(self, request: generator_pb2.GenerateRequest, **kwargs: Any) -> Iterator[Any]:
        self.requests.append(request)
        self.metadata = kwargs["metadata"]
        for start in range(0, self.tokens, 5):
            time.sleep(FRAME_SECONDS)
            yield generator_pb2.TokenFrame(semantic_ids=list(range(start, min(start + 5, self.tokens))))
        result = generator_pb2.GenerateResult(
            semantic_tokens=self.tokens, first_token_seconds=0.011, total_seconds=0.2
        )
        yield generator_pb2.TokenFrame(result=result)


class FakeVocoder:
    """Reads the whole stream, then answers 10 tokens of audio per chunk (an empty final chunk)."""

    def __init__(self) -> None:
        self.messages: list[vocoder_pb2.DecodeRequest] = []

    def Decode(self, requests: Iterable[vocoder_pb2.DecodeRequest], **kwargs: Any) -> Iterator[Any]:
        self.messages = list(requests)
        tokens = sum(len(m.frame.token_ids) for m in self.messages if m.HasField("frame"))
        for offset in range(0, tokens, 10):
            samples = min(10, tokens - offset) * TOKEN_SAMPLES
            yield vocoder_pb2.AudioChunk(
                pcm_f32=bytes(4 * samples), sample_offset=offset * TOKEN_SAMPLES, sample_rate=24000
            )
        yield vocoder_pb2.AudioChunk(sample_offset=tokens * TOKEN_SAMPLES, sample_rate=24000, final=True)


def test_wait_all_sends_every_token_at_once_and_times_first_audio_from_generate() -> None:
    generator, vocoder = FakeGenerator(40), FakeVocoder()
    request = generator_pb2.GenerateRequest(text="A sentence to speak.", sampling=sampling_params(40, 3))
    prompt = vocoder_pb2.S3Prompt(prompt_tokens=[1, 2], prompt_mel_f32=bytes(4 * 4 * 80), xvector=[0.0] * 192)
    figures = wait_all(generator, vocoder, request, prompt, 3, text_id=TEXT.id, run=0)

    assert [m.WhichOneof("message") for m in vocoder.messages] == ["start", "frame", "end"]
    start = vocoder.messages[0].start
    assert start.codec == "s3gen" and start.seed == 3 and start.s3_prompt == prompt
    assert list(vocoder.messages[1].frame.token_ids) == list(range(40))
    assert generator.requests == [request]
    assert dict(generator.metadata)["x-request-id"] == figures.request_id

    assert figures.mode == "wait-all" and figures.semantic_tokens == 40
    assert figures.audio_seconds == pytest.approx(40 * TOKEN_SAMPLES / 24000)
    assert figures.client_all_tokens_seconds is not None
    assert 8 * FRAME_SECONDS <= figures.client_all_tokens_seconds <= figures.first_audio_seconds
    assert figures.first_audio_seconds <= figures.total_seconds
    assert (figures.generator_first_token_seconds, figures.generator_all_tokens_seconds) == (0.011, 0.2)


def test_pipelined_calls_the_gateway_with_the_same_sampling_and_a_known_request_id() -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def synthesize(*args: Any, **kwargs: Any) -> client.Synthesis:
        calls.append((args, kwargs))
        summary = speech_pb2.Summary(semantic_tokens=40)
        return client.Synthesis(bytes(2 * 38400), 24000, 0.12, 0.9, summary, [0])

    sampling = sampling_params(40, 3)
    figures = pipelined("127.0.0.1:1", TEXT, sampling, 3, voice="default", run=2, synthesize=synthesize)
    [(args, kwargs)] = calls
    assert args == ("127.0.0.1:1", TEXT.text)
    assert kwargs["sampling"] == sampling and kwargs["seed"] == 3 and kwargs["voice"] == "default"
    assert dict(kwargs["metadata"])["x-request-id"] == figures.request_id
    assert (figures.mode, figures.run, figures.text_id) == ("pipelined", 2, TEXT.id)
    assert (figures.first_audio_seconds, figures.total_seconds, figures.semantic_tokens) == (0.12, 0.9, 40)
    assert figures.audio_seconds == pytest.approx(1.6)
    assert figures.generator_all_tokens_seconds is None


def test_sampling_fixes_the_token_count() -> None:
    sampling = sampling_params(100, 7)
    assert (sampling.max_tokens, sampling.min_tokens, sampling.seed) == (100, 100, 7)


def test_a_text_must_be_one_gateway_segment() -> None:
    assert segment_of("  Two   sentences.  In one segment. ", 250) == "Two sentences. In one segment."
    with pytest.raises(ValueError, match="2 segments"):
        segment_of("First sentence here. Second sentence there.", 34)


def test_runs_interleave_with_the_modes_taking_turns_first() -> None:
    texts = [TEXT, Text("medium-1", "medium", "Another one.")]
    order: list[tuple[str, str, int]] = []

    def measure(mode: str, text: Text, run: int) -> RunFigures:
        order.append((mode, text.id, run))
        return figures(mode, run, 0.1)

    assert len(interleave(texts, 3, measure)) == 6
    assert order == [
        ("pipelined", "medium-0", 0),
        ("wait-all", "medium-0", 0),
        ("wait-all", "medium-1", 1),
        ("pipelined", "medium-1", 1),
        ("pipelined", "medium-0", 2),
        ("wait-all", "medium-0", 2),
    ]


def figures(
    mode: str, run: int, first: float, total: float = 1.0, generated: float | None = 0.5
) -> RunFigures:
    return RunFigures(mode, run, TEXT.id, f"{mode}-{run}", first, total, 100, 4.0, 0.05, generated)


def test_the_generator_log_gives_the_pipelined_runs_their_generator_times(tmp_path: Path) -> None:
    log = tmp_path / "generator.log"
    lines = [
        {"event": "started", "service": "generator"},
        {
            "event": "generated",
            "request_id": "pipelined-0",
            "first_token_seconds": 0.04,
            "total_seconds": 0.9,
        },
    ]
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    times = generator_times(log)
    assert times == {"pipelined-0": (0.04, 0.9)}
    assert generator_times(tmp_path / "missing.log") == {}

    found = with_generator_times(figures("pipelined", 0, 0.1, generated=None), times)
    assert (found.generator_first_token_seconds, found.generator_all_tokens_seconds) == (0.04, 0.9)
    missing = figures("pipelined", 1, 0.1, generated=None)
    assert with_generator_times(missing, times) is missing


def test_summary_leaves_out_the_warm_up_and_gives_the_ratio() -> None:
    runs = [figures("pipelined", -1, 5.0), figures("wait-all", -1, 9.0)]
    runs += [figures("pipelined", r, first) for r, first in enumerate((0.10, 0.20, 0.12))]
    runs += [figures("wait-all", r, first, total=2.0) for r, first in enumerate((1.2, 1.0, 1.4))]
    runs.append(figures("pipelined", 3, 0.12, generated=None))
    summary = summarize(runs)

    pipe, wait = summary["modes"]["pipelined"], summary["modes"]["wait-all"]
    assert pipe["runs"] == 4 and wait["runs"] == 3
    assert pipe["first_audio_seconds"] == {"median": 0.12, "min": 0.1, "max": 0.2}
    assert wait["first_audio_seconds"] == {"median": 1.2, "min": 1.0, "max": 1.4}
    assert pipe["generator_all_tokens_seconds"]["median"] == 0.5  # the run without one left out
    assert pipe["semantic_tokens"] == [100]
    assert summary["wait_all_over_pipelined"] == {"first_audio": 10.0, "total": 2.0}

    text = table(summary)
    assert "| pipelined | 4 | 120 | 100-200 | 500 | 1000 |" in text
    assert "| wait-all | 3 | 1200 | 1000-1400 | 500 | 2000 |" in text
    assert "first audio 10.0x, total 2.0x" in text
    assert tuple(summary["modes"]) == MODES


def test_the_voice_is_the_packs_conds_and_the_gateways_default(tmp_path: Path) -> None:
    pack = write_random_pack(tmp_path / "pack", "tiny", seed=2, family="chatterbox")
    t3, s3 = chatterbox_voice(pack, "default")
    assert len(t3.speaker_embedding) == 256 and t3.prompt_tokens and s3.prompt_tokens
    with pytest.raises(ValueError, match="narrator"):
        chatterbox_voice(pack, "narrator")  # the pack's second voice has its own conds file


def test_the_command_takes_its_options_and_refuses_another_family(tmp_path: Path) -> None:
    args = parser().parse_args(["chatterbox", "--runs", "2", "--tokens", "50", "--seed", "4"])
    assert args.func is cmd_chatterbox
    assert (args.runs, args.tokens, args.seed, args.kind, args.pack) == (2, 50, 4, "medium", None)
    spark = write_random_pack(tmp_path / "spark", "tiny", seed=2)
    assert Pack.open(spark.root).family.name == "spark"
    args = parser().parse_args(["chatterbox", "--pack", str(spark.root), "--out", str(tmp_path)])
    assert args.func(args) == 2
