"""Segments of one request: voice kept across segments, pipelining bounded, audio strictly in order.

The runner here is a scripted stand-in for generator + vocoder so that the order of events can be
controlled; the real services run the same paths in tests/integration/test_long_text.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest

from voxserve.families import orpheus, s3, spark
from voxserve.families.family import VoiceParts
from voxserve.gateway.config import load
from voxserve.gateway.pipeline import SegmentJob, UpstreamError
from voxserve.gateway.synthesis import Synthesis
from voxserve.gateway.voices import Voice, VoiceRegistry
from voxserve.v1 import generator_pb2, speech_pb2, vocoder_pb2

CAPTURED_IDS = tuple(range(100, 132))


class ScriptedRunner:
    """Each segment: global ids (generated unless given), then `chunks` chunks of 320 samples whose
    values encode (segment index, chunk index); records what it was asked and how many ran at once."""

    def __init__(
        self,
        chunks: int = 4,
        delay: float = 0.005,
        fail_segment: int | None = None,
        generated_after_chunk: int | None = None,
    ):
        self.chunks = chunks
        self.generated_after_chunk = generated_after_chunk
        self.events: list[tuple[str, int]] = []
        self.delay = delay
        self.fail_segment = fail_segment
        self.requests: list[generator_pb2.GenerateRequest] = []
        self.jobs: list[SegmentJob] = []
        self.running = 0
        self.most_running = 0
        self.cancelled = 0

    async def __call__(self, job: SegmentJob) -> AsyncIterator[vocoder_pb2.AudioChunk]:
        request, stats = job.request, job.stats
        index = len(self.requests)
        self.requests.append(request)
        self.jobs.append(job)
        self.events.append(("start", index))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delay)
            given = tuple(request.global_tokens.ids) or tuple(request.speaker.global_ids)
            if job.family.voice_from_generator:
                stats.global_ids = given or CAPTURED_IDS
                stats.voice_known.set()
            if self.generated_after_chunk is None:
                stats.generated.set()  # generation ends early; decoding goes on
            for k in range(self.chunks):
                if index == self.fail_segment and k == 1:
                    raise UpstreamError("vocoder", grpc.StatusCode.UNAVAILABLE, "replica went away")
                # Later segments are faster, so their audio is ready before earlier segments finish.
                await asyncio.sleep(self.delay / (index + 1))
                pcm = np.full(320, index * 10 + k, np.float32)
                rate = job.family.sample_rate
                yield vocoder_pb2.AudioChunk(pcm_f32=pcm.tobytes(), sample_rate=rate, sample_offset=320 * k)
                if k == self.generated_after_chunk:
                    self.events.append(("generated", index))
                    stats.generated.set()
            stats.result.semantic_tokens = self.chunks
            stats.result.finish_reason = generator_pb2.GenerateResult.STOP
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1


async def texts(*items: str) -> AsyncIterator[str]:
    for item in items:
        yield item


def synthesis(runner: ScriptedRunner, voice: str = "female", **config: object) -> Synthesis:
    registry = VoiceRegistry.builtin()
    found = registry.get(voice)
    assert found is not None
    settings = {"crossfade_ms": 0.0, **config}
    return Synthesis(runner, found, speech_pb2.SynthesizeRequest(voice=voice), load(**settings))


async def collect(synth: Synthesis, *items: str) -> np.ndarray:
    return np.concatenate([pcm async for pcm in synth.audio(texts(*items))])


async def test_segments_reach_the_client_in_order_although_later_ones_finish_first() -> None:
    runner = ScriptedRunner()
    audio = await collect(synthesis(runner), "One.", "Two.", "Three.")
    values = audio.reshape(-1, 320)[:, 0]
    assert values.tolist() == [s * 10 + k for s in range(3) for k in range(4)]


async def test_controllable_voice_is_captured_from_the_first_segment() -> None:
    runner = ScriptedRunner()
    synth = synthesis(runner, "female")
    await collect(synth, "One.", "Two.", "Three.")
    first, *later = runner.requests
    assert first.WhichOneof("voice") == "style"
    assert all(tuple(r.global_tokens.ids) == CAPTURED_IDS for r in later)


async def test_fixed_voice_is_prefilled_from_the_start() -> None:
    runner = ScriptedRunner()
    synth = synthesis(runner, "default")
    await collect(synth, "One.", "Two.")
    assert synth.voice.parts.global_ids is not None
    assert all(tuple(r.global_tokens.ids) == synth.voice.parts.global_ids for r in runner.requests)


async def test_an_enrolled_voices_reference_goes_with_its_globals_in_every_segment() -> None:
    runner = ScriptedRunner()
    parts = VoiceParts(
        global_ids=tuple(range(32)), reference_text="This is me.", reference_semantic_ids=(5, 0, 8191)
    )
    voice = Voice("mine", "", spark.FAMILY, parts)
    assert not voice.reuses_first_voice
    synth = Synthesis(runner, voice, speech_pb2.SynthesizeRequest(voice="mine"), load(crossfade_ms=0.0))
    await collect(synth, "One.", "Two.")
    assert [r.text for r in runner.requests] == ["One.", "Two."]
    for request in runner.requests:
        assert request.WhichOneof("voice") == "global_tokens"
        assert tuple(request.global_tokens.ids) == tuple(range(32))
        assert request.global_tokens.reference_text == "This is me."
        assert list(request.global_tokens.reference_semantic_ids) == [5, 0, 8191]


async def test_a_voice_without_a_reference_sends_none() -> None:
    runner = ScriptedRunner()
    await collect(synthesis(runner, "default"), "One.")
    (request,) = runner.requests
    assert request.global_tokens.ids and not request.global_tokens.reference_text
    assert not request.global_tokens.reference_semantic_ids


async def test_a_named_speakers_voice_is_captured_from_the_first_segment() -> None:
    runner = ScriptedRunner()
    voice = Voice("meera", "", spark.FAMILY, VoiceParts(speaker="meera"))
    synth = Synthesis(runner, voice, speech_pb2.SynthesizeRequest(voice="meera"), load(crossfade_ms=0.0))
    await collect(synth, "नमस्ते <laugh>", "आप कैसे हैं?", "ठीक है।")
    first, *later = runner.requests
    assert first.WhichOneof("voice") == "speaker" and first.speaker.name == "meera"
    assert not first.speaker.global_ids and first.text == "नमस्ते <laugh>"
    assert all(r.speaker.name == "meera" and tuple(r.speaker.global_ids) == CAPTURED_IDS for r in later)


async def test_an_orpheus_voice_names_its_speaker_in_every_segment_and_waits_for_no_globals() -> None:
    runner = ScriptedRunner()
    voice = Voice("leo", "", orpheus.FAMILY, VoiceParts(speaker="leo"))
    synth = Synthesis(runner, voice, speech_pb2.SynthesizeRequest(voice="leo"), load(crossfade_ms=0.0))
    assert synth.sample_rate == 24000 and synth.samples_per_token == 2048
    await collect(synth, "One.", "Two.", "Three.")
    assert [(r.speaker.name, list(r.speaker.global_ids)) for r in runner.requests] == [("leo", [])] * 3
    # A runaway cap in generator tokens: 7 codes per 85.3 ms frame.
    seconds = load().min_max_seconds
    assert synth.default_max_tokens("Hi.") == min(load().max_tokens, -(-seconds * 7 * 24000 // 2048))


@pytest.mark.parametrize("in_flight", [1, 2, 3])
async def test_segments_in_flight_are_bounded(in_flight: int) -> None:
    runner = ScriptedRunner()
    await collect(synthesis(runner, segments_in_flight=in_flight), *[f"Sentence {i}." for i in range(6)])
    assert runner.most_running == in_flight


async def test_the_next_segment_starts_once_the_previous_one_is_generated() -> None:
    runner = ScriptedRunner(chunks=6, generated_after_chunk=2)
    await collect(synthesis(runner, segments_in_flight=3), "One.", "Two.", "Three.")
    assert runner.events == [
        ("start", 0),
        ("generated", 0),
        ("start", 1),
        ("generated", 1),
        ("start", 2),
        ("generated", 2),
    ]
    assert runner.most_running >= 2  # segment k+1 runs while k is still decoding


async def test_each_segment_gets_its_own_default_max_tokens() -> None:
    runner = ScriptedRunner()
    synth = synthesis(runner)
    await collect(synth, "Short.", "A much longer segment of text " * 4)
    short, long = (r.sampling.max_tokens for r in runner.requests)
    assert short == synth.default_max_tokens("Short.")
    assert long > short


async def test_a_failing_segment_ends_the_request_and_cancels_the_rest() -> None:
    runner = ScriptedRunner(fail_segment=1, chunks=6)
    synth = synthesis(runner, segments_in_flight=3)
    with pytest.raises(UpstreamError, match="replica went away"):
        await collect(synth, "One.", "Two.", "Three.", "Four.")
    await asyncio.sleep(0.05)
    assert runner.running == 0
    assert all(s.task is not None and s.task.done() for s in synth.segments)


async def test_closing_early_cancels_running_segments() -> None:
    runner = ScriptedRunner(chunks=50)
    synth = synthesis(runner, segments_in_flight=2)
    stream = synth.audio(texts("One.", "Two.", "Three."))
    await anext(stream)
    await stream.aclose()
    await asyncio.sleep(0.05)
    assert runner.running == 0
    assert runner.cancelled == 2


async def test_timeline_and_totals() -> None:
    runner = ScriptedRunner()
    synth = synthesis(runner)
    arrived = asyncio.get_running_loop().time()
    await collect(synth, "One.", "Two.")
    timings = synth.timeline(arrived)
    assert [t.index for t in timings] == [0, 1]
    assert all(t.samples == 4 * 320 and t.semantic_tokens == 4 for t in timings)
    assert all(0 <= t.started_seconds <= t.first_audio_seconds <= t.finished_seconds for t in timings)
    assert timings[1].started_seconds < timings[0].finished_seconds  # pipelined
    assert synth.totals() == (0, 8, generator_pb2.GenerateResult.STOP)


async def test_a_gap_in_sample_offsets_is_refused() -> None:
    class Gappy(ScriptedRunner):
        async def __call__(self, job: SegmentJob) -> AsyncIterator[vocoder_pb2.AudioChunk]:
            yield vocoder_pb2.AudioChunk(pcm_f32=np.zeros(10, np.float32).tobytes(), sample_rate=16000)
            yield vocoder_pb2.AudioChunk(
                pcm_f32=np.zeros(10, np.float32).tobytes(), sample_rate=16000, sample_offset=11
            )

    with pytest.raises(UpstreamError, match="expected sample 10"):
        await collect(synthesis(Gappy()), "One.")


async def test_an_s3_voice_sends_text_alone_and_its_prompt_to_the_vocoder() -> None:
    runner = ScriptedRunner()
    prompt = vocoder_pb2.S3Prompt(prompt_tokens=[1, 2], xvector=[0.5])
    voice = Voice("s", "", s3.FAMILY, VoiceParts(s3_prompt=prompt))
    synth = Synthesis(runner, voice, speech_pb2.SynthesizeRequest(voice="s", seed=9), load(crossfade_ms=0.0))
    await collect(synth, "One.", "Two.")
    assert [r.WhichOneof("voice") for r in runner.requests] == [None, None]
    assert all(job.s3_prompt == prompt and job.seed == 9 for job in runner.jobs)
    assert all(job.decode_start().codec == "s3gen" for job in runner.jobs)
