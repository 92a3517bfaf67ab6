"""Speech-token generation on vLLM's async engine (Spark and s3 families).

Generation is constrained to the token grammar of the family. Spark: a controllable voice first
samples exactly 32 global tokens (allowed ids: the globals), then the same sequence continues
with the semantic tokens (allowed ids: semantic tokens and the end markers). s3: the prompt is
the text alone and the model writes speech tokens up to its end marker; the voice is the
vocoder's. A trained model
puts its mass there anyway; constraining keeps a fine-tune's stray token from ever reaching the
vocoder. Outputs are DELTA: each engine step's new tokens become one frame without waiting.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voxserve.common.logging import get_logger
from voxserve.common.status import InvalidArgument
from voxserve.generator.prompts import GLOBAL_TOKENS_PER_VOICE, Gender, SparkPromptBuilder, s3_prompt
from voxserve.generator.token_table import TokenKind, TokenTable

log = get_logger(__name__)

NUM_GLOBAL_TOKENS = GLOBAL_TOKENS_PER_VOICE


@dataclass(frozen=True)
class Sampling:
    """Sampling for one request; the defaults are upstream Spark-TTS's."""

    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    repetition_penalty: float = 1.0
    max_tokens: int | None = None
    min_tokens: int = 0
    seed: int | None = None


@dataclass(frozen=True)
class Style:
    gender: Gender = "female"
    pitch: int = 2
    speed: int = 2


@dataclass
class GenerationResult:
    finish_reason: str = ""
    prompt_tokens: int = 0
    semantic_tokens: int = 0
    queue_seconds: float = 0.0
    first_token_seconds: float = 0.0
    total_seconds: float = 0.0


@dataclass
class Frame:
    global_ids: list[int] = field(default_factory=list)
    semantic_ids: list[int] = field(default_factory=list)
    result: GenerationResult | None = None


def _queue_seconds(output: Any) -> float:
    stats = getattr(output, "metrics", None)
    if stats is None or not getattr(stats, "scheduled_ts", 0) or not getattr(stats, "queued_ts", 0):
        return 0.0
    return max(0.0, float(stats.scheduled_ts - stats.queued_ts))


class SparkGenerator:
    """Turns (text, voice, sampling) into a stream of token frames on a shared vLLM engine."""

    def __init__(self, llm: Any, tokenizer: Any, table: TokenTable, *, max_model_len: int, max_tokens: int):
        self.llm = llm
        self.tokenizer = tokenizer
        self.table = table
        self.max_model_len = max_model_len
        self.max_tokens = max_tokens
        self.prompts = SparkPromptBuilder.from_token_table(table)
        self._end_ids = [table.end_semantic_id, table.eos_id]
        self._global_allowed = [int(i) for i in table.global_ids]
        # The start marker is allowed (and skipped): after Spark's globals the model may write it.
        self._semantic_allowed = (
            [int(i) for i in table.semantic_ids] + self._end_ids + [table.start_semantic_id]
        )
        self._active: set[str] = set()

    @property
    def active_requests(self) -> int:
        return len(self._active)

    def _encode(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def _semantic_budget(self, sampling: Sampling, prompt_len: int) -> int:
        room = self.max_model_len - prompt_len - 2  # the start and end markers
        if sampling.max_tokens is None:
            budget = min(self.max_tokens, room)
            if budget < 1:
                raise InvalidArgument(
                    f"text is too long: its prompt takes {prompt_len} of the model's "
                    f"{self.max_model_len} tokens"
                )
            return budget
        if sampling.max_tokens > room:
            raise InvalidArgument(
                f"sampling.max_tokens={sampling.max_tokens} does not fit: the prompt takes {prompt_len} "
                f"of the model's {self.max_model_len} tokens, leaving {max(room, 0)}"
            )
        return sampling.max_tokens

    def _params(self, sampling: Sampling, **overrides: Any) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        greedy = sampling.temperature == 0
        return SamplingParams(
            temperature=sampling.temperature,
            top_k=0 if greedy else sampling.top_k,
            top_p=1.0 if greedy else sampling.top_p,
            repetition_penalty=sampling.repetition_penalty,
            seed=sampling.seed,
            output_kind=RequestOutputKind.DELTA,
            **overrides,
        )

    async def _run(self, prompt_ids: list[int], params: Any, request_id: str) -> AsyncIterator[Any]:
        """One engine request; aborted if the consumer goes away before it finishes."""
        finished = False
        self._active.add(request_id)
        try:
            async for output in self.llm.generate({"prompt_token_ids": prompt_ids}, params, request_id):
                finished = output.finished
                yield output
        finally:
            self._active.discard(request_id)
            if not finished:
                log.info("aborting engine request", engine_request_id=request_id)
                await self.llm.abort(request_id)

    async def _generate_globals(
        self, prompt_ids: list[int], sampling: Sampling, request_id: str
    ) -> list[int]:
        params = self._params(
            sampling,
            max_tokens=NUM_GLOBAL_TOKENS,
            min_tokens=NUM_GLOBAL_TOKENS,
            allowed_token_ids=self._global_allowed,
        )
        token_ids: list[int] = []
        async for output in self._run(prompt_ids, params, request_id):
            token_ids.extend(output.outputs[0].token_ids)
        kinds, indices = self.table.classify(token_ids)
        if len(token_ids) != NUM_GLOBAL_TOKENS or np.any(kinds != TokenKind.GLOBAL):
            raise RuntimeError(f"the engine produced {len(token_ids)} tokens for the 32 global tokens")
        return [int(i) for i in indices]

    async def generate(
        self,
        text: str,
        *,
        global_ids: list[int] | None,
        style: Style | None,
        sampling: Sampling,
        request_id: str,
    ) -> AsyncIterator[Frame]:
        started = time.monotonic()
        result = GenerationResult()
        # Only the prompt builder's checks (e.g. special-token markup in text) are the caller's
        # fault; a ValueError from the engine below is not.
        speaks_globals = self.table.num_global > 0
        try:
            if not speaks_globals:
                prompt = s3_prompt(text)
            elif global_ids is not None:
                prompt = self.prompts.fixed_voice(text, global_ids)
            else:
                style = style or Style()
                head = self.prompts.controllable(text, style.gender, style.pitch, style.speed)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        if speaks_globals and global_ids is None:
            assert style is not None
            head_ids = [*self._encode(head), self.table.start_global_id]
            self._semantic_budget(sampling, len(head_ids) + NUM_GLOBAL_TOKENS + 1)  # fail before any work
            global_ids = await self._generate_globals(
                head_ids, sampling, f"{request_id}-g-{uuid.uuid4().hex[:8]}"
            )
            prompt = self.prompts.controllable_with_globals(
                text, style.gender, style.pitch, style.speed, global_ids
            )
        prompt_ids = self._encode(prompt)
        budget = self._semantic_budget(sampling, len(prompt_ids))
        result.prompt_tokens = len(prompt_ids)
        if speaks_globals:
            assert global_ids is not None
            yield Frame(global_ids=list(global_ids))

        params = self._params(
            sampling,
            max_tokens=budget + 1,
            min_tokens=min(sampling.min_tokens, budget) + (1 if sampling.min_tokens else 0),
            allowed_token_ids=self._semantic_allowed,
            stop_token_ids=self._end_ids,
        )
        engine_id = f"{request_id}-s-{uuid.uuid4().hex[:8]}"
        async for output in self._run(prompt_ids, params, engine_id):
            completion = output.outputs[0]
            kinds, indices = self.table.classify(list(completion.token_ids))
            semantic = [int(i) for i in indices[kinds == TokenKind.SEMANTIC]][
                : budget - result.semantic_tokens
            ]
            if semantic:
                if not result.semantic_tokens:
                    result.first_token_seconds = time.monotonic() - started
                result.semantic_tokens += len(semantic)
                yield Frame(semantic_ids=semantic)
            if output.finished:
                result.finish_reason = "length" if completion.finish_reason == "length" else "stop"
                result.queue_seconds = _queue_seconds(output)
            if result.semantic_tokens >= budget and not output.finished:
                result.finish_reason = "length"  # the start marker is optional; stop at the budget
                break
        result.total_seconds = time.monotonic() - started
        yield Frame(result=result)
