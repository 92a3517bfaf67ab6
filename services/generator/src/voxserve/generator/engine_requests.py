"""A token source's requests on a shared vLLM async engine: their sampling parameters, and the one
loop that streams a request's tokens as frames (first-token timing, the budget, the result, the
abort of a request its caller left)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any, Protocol

from voxserve.common.logging import get_logger
from voxserve.generator.frames import Frame, GenerationResult
from voxserve.generator.generate_args import Sampling

log = get_logger(__name__)


def sampling_params(sampling: Sampling, **overrides: Any) -> Any:
    """vLLM's SamplingParams for a request, streaming DELTA outputs; greedy decoding (temperature
    0) turns the truncations off."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    greedy = sampling.temperature == 0
    return SamplingParams(
        temperature=sampling.temperature,
        top_k=0 if greedy else sampling.top_k,
        top_p=1.0 if greedy else sampling.top_p,
        min_p=0.0 if greedy else sampling.min_p,
        seed=sampling.seed,
        output_kind=RequestOutputKind.DELTA,
        **overrides,
    )


def queue_seconds(output: Any) -> float:
    stats = getattr(output, "metrics", None)
    if stats is None or not getattr(stats, "scheduled_ts", 0) or not getattr(stats, "queued_ts", 0):
        return 0.0
    return max(0.0, float(stats.scheduled_ts - stats.queued_ts))


class SpeechCodes(Protocol):
    """Reads the codes the vocoder takes from the ids one engine step wrote; codes of a frame that
    is not whole yet wait (`pending`)."""

    def read(self, token_ids: Sequence[int]) -> list[int]: ...

    @property
    def pending(self) -> int: ...


class EngineRequests:
    """The requests one token source has live on its engine."""

    def __init__(self, llm: Any):
        self.llm = llm
        self._active: set[str] = set()

    @property
    def active(self) -> int:
        return len(self._active)

    def shutdown(self) -> None:
        self.llm.shutdown()

    async def run(self, prompt: dict[str, Any], params: Any, request_id: str) -> AsyncGenerator[Any, None]:
        """One engine request's outputs; aborted if the consumer goes away before it finishes."""
        finished = False
        self._active.add(request_id)
        try:
            async for output in self.llm.generate(prompt, params, request_id):
                finished = output.finished
                yield output
        finally:
            try:
                if not finished:
                    log.info("aborting engine request", engine_request_id=request_id)
                    await self.llm.abort(request_id)
            finally:
                # Live until aborted: no live requests means none is left in the engine.
                self._active.discard(request_id)

    async def stream(
        self,
        prompt: dict[str, Any],
        params: Any,
        request_id: str,
        *,
        codes: SpeechCodes,
        budget: int,
        result: GenerationResult,
        started: float,
    ) -> AsyncIterator[Frame]:
        """A frame of codes per engine step, at most `budget` codes in all, then the result (timed
        from `started`, the call's start)."""
        async with aclosing(self.run(prompt, params, request_id)) as outputs:
            async for output in outputs:
                completion = output.outputs[0]
                delivered = codes.read(completion.token_ids)[: budget - result.semantic_tokens]
                if delivered:
                    if not result.semantic_tokens:
                        result.first_token_seconds = time.monotonic() - started
                    result.semantic_tokens += len(delivered)
                    yield Frame(semantic_ids=delivered)
                if output.finished:
                    result.finish_reason = "length" if completion.finish_reason == "length" else "stop"
                    result.queue_seconds = queue_seconds(output)
                if result.semantic_tokens >= budget and not output.finished:
                    # Ids that are not codes (an optional start marker) do not count: stop here.
                    result.finish_reason = "length"
                    break
        if codes.pending:
            log.warning("dropped a partial frame", codes=codes.pending, engine_request_id=request_id)
        result.total_seconds = time.monotonic() - started
        yield Frame(result=result)
