"""The Speech servicer's statuses and outcome counts: bad input, a full service, a failed upstream
(relayed with its status, and the retry pushback of an overloaded one) and a completed call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from voxserve.common.status import RETRY_PUSHBACK
from voxserve.gateway.config import load
from voxserve.gateway.pipeline import SegmentJob, UpstreamError
from voxserve.gateway.servicer import SpeechServicer
from voxserve.gateway.voice_directory import VoiceDirectory
from voxserve.gateway.voices import VoiceRegistry
from voxserve.v1 import speech_pb2, vocoder_pb2

SAMPLES = 320


class Context:
    """A servicer context that records how the call was aborted."""

    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]] | None = None

    def time_remaining(self) -> float | None:
        return None

    async def abort(self, code: grpc.StatusCode, details: str = "", trailers: Sequence[Any] = ()) -> None:
        self.aborted = (code, details, tuple(trailers))
        raise grpc.aio.AbortError()


class Runner:
    """One chunk of silence per segment, after `gate` opens; or `error`."""

    def __init__(self, error: Exception | None = None, gate: asyncio.Event | None = None):
        self.error, self.gate = error, gate

    async def __call__(self, job: SegmentJob) -> AsyncIterator[vocoder_pb2.AudioChunk]:
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        job.stats.generated.set()
        pcm = np.zeros(SAMPLES, np.float32).tobytes()
        yield vocoder_pb2.AudioChunk(pcm_f32=pcm, sample_rate=job.family.sample_rate, final=True)


def servicer(runner: Runner, **config: Any) -> SpeechServicer:
    return SpeechServicer(VoiceDirectory(VoiceRegistry.builtin()), runner, load(**config))


def count(outcome: str) -> float:
    return REGISTRY.get_sample_value("voxserve_gateway_requests_total", {"outcome": outcome}) or 0.0


async def call(
    speech: SpeechServicer, text: str = "Hello there.", context: Context | None = None
) -> tuple[list[speech_pb2.SynthesizeResponse], Context]:
    context = context or Context()
    request = speech_pb2.SynthesizeRequest(text=text, voice="default")
    responses: list[speech_pb2.SynthesizeResponse] = []
    try:
        async for response in speech.Synthesize(request, context):  # type: ignore[arg-type]
            responses.append(response)
    except grpc.aio.AbortError:
        pass
    return responses, context


async def test_a_completed_call_ends_with_its_summary_and_counts_completed() -> None:
    before = count("completed")
    responses, context = await call(servicer(Runner()))
    assert context.aborted is None
    assert responses[-1].WhichOneof("message") == "summary"
    assert responses[-1].summary.samples == SAMPLES
    assert count("completed") == before + 1


async def test_bad_input_is_invalid_argument_and_counts_invalid() -> None:
    before = count("invalid")
    responses, context = await call(servicer(Runner()), text="   ")
    assert not responses
    assert context.aborted == (grpc.StatusCode.INVALID_ARGUMENT, "text is empty", ())
    assert count("invalid") == before + 1


@pytest.mark.parametrize(
    ("status", "trailers"),
    [(grpc.StatusCode.RESOURCE_EXHAUSTED, RETRY_PUSHBACK), (grpc.StatusCode.UNAVAILABLE, ())],
)
async def test_an_upstream_failure_is_relayed_with_its_status(
    status: grpc.StatusCode, trailers: tuple[tuple[str, str], ...]
) -> None:
    before = count("upstream_error")
    _, context = await call(servicer(Runner(error=UpstreamError("vocoder", status, "went wrong"))))
    assert context.aborted == (status, "vocoder: went wrong", trailers)
    assert count("upstream_error") == before + 1


async def test_a_call_past_max_streams_is_refused_with_pushback() -> None:
    gate = asyncio.Event()
    speech = servicer(Runner(gate=gate), max_streams=1)
    held = asyncio.create_task(call(speech))
    await asyncio.sleep(0.05)  # the first call holds the only place
    before = count("refused")
    responses, context = await call(speech)
    assert not responses and context.aborted is not None
    assert context.aborted[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert context.aborted[2] == RETRY_PUSHBACK
    assert count("refused") == before + 1
    gate.set()
    first, first_context = await held
    assert first_context.aborted is None and first[-1].WhichOneof("message") == "summary"
