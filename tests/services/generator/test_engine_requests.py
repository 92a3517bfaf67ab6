"""The token-streaming loop both token sources share, on a scripted engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from types import SimpleNamespace
from typing import Any

from voxserve.generator.engine_requests import EngineRequests
from voxserve.generator.frames import Frame, GenerationResult
from voxserve.generator.t3.generator import SpeechIds


class ScriptedEngine:
    """Writes the given steps of ids, then finishes (with `finish_reason`)."""

    def __init__(self, steps: Sequence[Sequence[int]], finish_reason: str = "stop"):
        self.steps = steps
        self.finish_reason = finish_reason
        self.aborted: list[str] = []
        self.prompts: list[dict[str, Any]] = []

    async def generate(self, prompt: dict[str, Any], params: Any, request_id: str) -> AsyncIterator[Any]:
        self.prompts.append(prompt)
        for n, ids in enumerate(self.steps):
            finished = n == len(self.steps) - 1
            completion = SimpleNamespace(
                token_ids=list(ids), finish_reason=self.finish_reason if finished else None
            )
            yield SimpleNamespace(outputs=[completion], finished=finished, metrics=None)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)


class Passthrough:
    pending = 0

    def read(self, token_ids: Sequence[int]) -> list[int]:
        return list(token_ids)


async def stream(
    engine: ScriptedEngine, budget: int, codes: Any = None
) -> tuple[list[Frame], EngineRequests]:
    requests = EngineRequests(engine)
    result = GenerationResult(prompt_tokens=7)
    frames = [
        frame
        async for frame in requests.stream(
            {"prompt_token_ids": [1]},
            None,
            "r-1",
            codes=codes or Passthrough(),
            budget=budget,
            result=result,
            started=0.0,
        )
    ]
    return frames, requests


async def test_every_step_is_a_frame_then_the_result() -> None:
    engine = ScriptedEngine([[1, 2], [], [3]])
    frames, requests = await stream(engine, budget=10)
    assert [f.semantic_ids for f in frames[:-1]] == [[1, 2], [3]]
    result = frames[-1].result
    assert result is not None and (result.finish_reason, result.semantic_tokens) == ("stop", 3)
    assert result.prompt_tokens == 7 and result.first_token_seconds > 0 and result.total_seconds > 0
    assert engine.aborted == [] and requests.active == 0


async def test_a_finish_at_the_models_length_is_reported() -> None:
    frames, _ = await stream(ScriptedEngine([[1], [2]], finish_reason="length"), budget=10)
    assert frames[-1].result is not None and frames[-1].result.finish_reason == "length"


async def test_the_budget_cuts_the_stream_and_aborts_the_engine_request() -> None:
    engine = ScriptedEngine([[1, 2, 3], [4, 5, 6], [7]])
    frames, requests = await stream(engine, budget=4)
    assert [f.semantic_ids for f in frames[:-1]] == [[1, 2, 3], [4]]
    result = frames[-1].result
    assert result is not None and (result.finish_reason, result.semantic_tokens) == ("length", 4)
    assert engine.aborted == ["r-1"] and requests.active == 0


async def test_a_caller_that_leaves_aborts_the_engine_request() -> None:
    engine = ScriptedEngine([[1], [2], [3]])
    requests = EngineRequests(engine)
    frames = requests.stream(
        {}, None, "r-2", codes=Passthrough(), budget=10, result=GenerationResult(), started=0.0
    )
    async with aclosing(frames):
        first = await anext(frames)
        assert first.semantic_ids == [1] and requests.active == 1
    assert engine.aborted == ["r-2"] and requests.active == 0


async def test_t3_delivers_speech_ids_only() -> None:
    frames, _ = await stream(ScriptedEngine([[6561, 5, 6560], [8000]]), budget=10, codes=SpeechIds())
    assert [f.semantic_ids for f in frames[:-1]] == [[5, 6560]]
    assert frames[-1].result is not None and frames[-1].result.semantic_tokens == 2
