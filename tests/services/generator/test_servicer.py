"""How a Generate call ends: its status and the outcome it is counted under."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import grpc
import pytest
from prometheus_client import REGISTRY

from voxserve.common.status import InvalidArgument
from voxserve.families import spark
from voxserve.families.family import Family
from voxserve.generator.frames import Frame, GenerationResult
from voxserve.generator.generate_args import DEFAULT_SAMPLING, GenerateArgs, Sampling
from voxserve.generator.servicer import GeneratorServicer
from voxserve.v1 import generator_pb2


@dataclass
class FakeSource:
    frames: Sequence[Frame | Exception]
    family: Family = spark.FAMILY
    num_global: int = 4096
    default_sampling: Sampling = DEFAULT_SAMPLING
    active_requests: int = 0
    seen: list[GenerateArgs] = field(default_factory=list)

    async def generate(self, args: GenerateArgs, request_id: str) -> AsyncIterator[Frame]:
        self.seen.append(args)
        for frame in self.frames:
            if isinstance(frame, Exception):
                raise frame
            yield frame

    def shutdown(self) -> None:
        pass


class Context:
    code: grpc.StatusCode | None = None
    details = ""

    async def abort(
        self, code: grpc.StatusCode, details: str, trailers: Sequence[tuple[str, str]] = ()
    ) -> None:
        self.code, self.details = code, details
        raise grpc.aio.AbortError()


def count(outcome: str) -> float:
    return REGISTRY.get_sample_value("voxserve_generator_requests_total", {"outcome": outcome}) or 0.0


async def call(
    source: FakeSource, request: generator_pb2.GenerateRequest, max_streams: int = 4
) -> tuple[list[generator_pb2.TokenFrame], Context]:
    servicer = GeneratorServicer(source, max_text_chars=100, max_tokens=100, max_streams=max_streams)
    context = Context()
    frames: list[generator_pb2.TokenFrame] = []
    try:
        async for frame in servicer.Generate(request, context):  # type: ignore[arg-type]
            frames.append(frame)
    except grpc.aio.AbortError:
        pass
    return frames, context


HELLO = generator_pb2.GenerateRequest(text=" Hello. ", style=generator_pb2.VoiceStyle())
DONE = Frame(result=GenerationResult(finish_reason="stop", semantic_tokens=2))


async def test_a_completed_call_streams_its_frames_and_counts_completed() -> None:
    before = count("completed")
    source = FakeSource([Frame(global_ids=[1] * 32), Frame(semantic_ids=[4, 5]), DONE])
    frames, context = await call(source, HELLO)
    assert [list(f.semantic_ids) for f in frames] == [[], [4, 5], []]
    assert frames[-1].result.finish_reason == generator_pb2.GenerateResult.STOP
    assert context.code is None and count("completed") == before + 1
    assert source.seen[0].text == "Hello." and source.seen[0].style is not None


async def test_a_bad_request_is_invalid_before_the_source_runs() -> None:
    before = count("invalid")
    source = FakeSource([DONE])
    request = generator_pb2.GenerateRequest(text="hi", sampling=generator_pb2.SamplingParams(guidance=1))
    frames, context = await call(source, request)
    assert frames == [] and source.seen == []
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT
    assert context.details == "sampling.guidance is not accepted: it is for the chatterbox family only"
    assert count("invalid") == before + 1


async def test_the_sources_refusal_of_the_input_is_invalid() -> None:
    before = count("invalid")
    _, context = await call(FakeSource([InvalidArgument("text is too long: x" * 400)]), HELLO)
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT and len(context.details) <= 500
    assert count("invalid") == before + 1


async def test_a_full_generator_refuses_and_counts_refused() -> None:
    before = count("refused")
    source = FakeSource([DONE])
    servicer = GeneratorServicer(source, max_text_chars=100, max_tokens=100, max_streams=1)
    with servicer.admission.enter():
        context = Context()
        with pytest.raises(grpc.aio.AbortError):
            async for _ in servicer.Generate(HELLO, context):  # type: ignore[arg-type]
                pass
    assert context.code == grpc.StatusCode.RESOURCE_EXHAUSTED and count("refused") == before + 1


async def test_an_engine_failure_is_an_error() -> None:
    before = count("error")
    with pytest.raises(RuntimeError, match="engine died"):
        await call(FakeSource([Frame(semantic_ids=[1]), RuntimeError("engine died")]), HELLO)
    assert count("error") == before + 1


async def test_a_call_left_before_its_result_is_cancelled() -> None:
    before = count("cancelled")
    servicer = GeneratorServicer(
        FakeSource([Frame(semantic_ids=[1]), DONE]), max_text_chars=100, max_tokens=100
    )
    frames = servicer.Generate(HELLO, Context())  # type: ignore[arg-type]
    await anext(frames)
    await frames.aclose()  # type: ignore[attr-defined]
    assert count("cancelled") == before + 1
