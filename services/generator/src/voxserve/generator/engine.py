"""Speech-token generation by a token LM on vLLM's async engine (the families with a token
grammar: Spark, s3, Orpheus).

Generation is constrained to the family's token grammar. A voice whose global tokens the model
writes itself (a Spark style, or a named speaker of a fine-tune) first samples exactly 32 global
tokens (allowed ids: the globals), then the same sequence continues with the semantic tokens
(allowed ids: semantic tokens and the end markers). Where a frame is several codes (Orpheus's 7
SNAC codes), every token is held to its place in the frame (`frame_positions`) and the end comes
only between frames. A trained model puts its mass there anyway; constraining keeps a
fine-tune's stray token from ever reaching the vocoder. Which prompt a voice makes is the
family's (`voice_prompts`). Outputs are DELTA: each engine step's new tokens become one frame
without waiting (whole frames where a frame is several codes). A Spark voice with a reference
ends its prompt with the reference's semantic tokens; the model continues them, and only the
tokens it writes reach the frames.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np

from voxserve.common.status import InvalidArgument
from voxserve.families.family import Family, TokenKind
from voxserve.families.spark import GLOBAL_TOKENS_PER_VOICE
from voxserve.generator.engine_requests import EngineRequests, sampling_params
from voxserve.generator.frame_layout import FrameLayout
from voxserve.generator.frames import Frame, FrameAssembler, GenerationResult
from voxserve.generator.generate_args import DEFAULT_SAMPLING, GenerateArgs, Reference, Sampling
from voxserve.generator.token_budget import TokenBudget
from voxserve.generator.token_table import TokenTable
from voxserve.generator.voice_prompts import VoicePrompts


class SemanticCodes:
    """The codes of the semantic tokens among an engine step's ids, in whole frames."""

    def __init__(self, table: TokenTable, frames: FrameAssembler):
        self.table = table
        self.frames = frames

    def read(self, token_ids: Sequence[int]) -> list[int]:
        kinds, indices = self.table.classify(list(token_ids))
        return self.frames.add(indices[kinds == TokenKind.SEMANTIC])

    @property
    def pending(self) -> int:
        return self.frames.pending


class TokenGenerator:
    """Turns a request (text, voice, sampling) into a stream of token frames on a shared vLLM
    engine."""

    default_sampling = DEFAULT_SAMPLING

    def __init__(
        self,
        llm: Any,
        tokenizer: Any,
        table: TokenTable,
        prompts: VoicePrompts,
        *,
        family: Family,
        max_model_len: int,
        max_tokens: int,
    ):
        self.llm = llm
        self.requests = EngineRequests(llm)
        self.tokenizer = tokenizer
        self.table = table
        self.prompts = prompts
        self._family = family
        self._end_ids = [table.end_semantic_id, table.eos_id]
        self._global_allowed = [int(i) for i in table.global_ids]
        # The start marker is allowed (and skipped): after Spark's globals the model may write it.
        self._semantic_allowed = (
            [int(i) for i in table.semantic_ids] + self._end_ids + [table.start_semantic_id]
        )
        per = family.codes_per_token
        self.codebook_size = table.num_semantic // per
        """Codes of one frame position."""
        self.frame_layout = self._frame_layout() if per > 1 else None
        # Two of the positions after the prompt are the start and end markers.
        self.budget = TokenBudget(
            max_model_len, default_tokens=max_tokens, reserved=2, frame_tokens=per, family=family.name
        )

    @property
    def family(self) -> Family:
        return self._family

    @property
    def num_global(self) -> int:
        return self.table.num_global

    @property
    def active_requests(self) -> int:
        return self.requests.active

    def shutdown(self) -> None:
        self.requests.shutdown()

    def _frame_layout(self) -> FrameLayout:
        ids = self.table.semantic_ids
        first = int(ids[0])
        # The logits processor masks by id range, so position p's codes must be consecutive ids.
        if not np.array_equal(ids, np.arange(first, first + len(ids))):
            raise ValueError(f"the tokenizer's {self.family.name} audio tokens do not have consecutive ids")
        return FrameLayout(
            first_id=first,
            codes=self.codebook_size,
            positions=self.family.codes_per_token,
            end_ids=tuple(self._end_ids),
        )

    def _encode(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def _params(self, sampling: Sampling, **overrides: Any) -> Any:
        return sampling_params(sampling, repetition_penalty=sampling.repetition_penalty, **overrides)

    async def _generate_globals(
        self, prompt_ids: list[int], sampling: Sampling, request_id: str
    ) -> tuple[int, ...]:
        params = self._params(
            sampling,
            max_tokens=GLOBAL_TOKENS_PER_VOICE,
            min_tokens=GLOBAL_TOKENS_PER_VOICE,
            allowed_token_ids=self._global_allowed,
        )
        token_ids: list[int] = []
        async for output in self.requests.run({"prompt_token_ids": prompt_ids}, params, request_id):
            token_ids.extend(output.outputs[0].token_ids)
        kinds, indices = self.table.classify(token_ids)
        if len(token_ids) != GLOBAL_TOKENS_PER_VOICE or np.any(kinds != TokenKind.GLOBAL):
            raise RuntimeError(
                f"the engine produced {len(token_ids)} tokens for the {GLOBAL_TOKENS_PER_VOICE} global tokens"
            )
        return tuple(int(i) for i in indices)

    async def generate(self, args: GenerateArgs, request_id: str) -> AsyncIterator[Frame]:
        started = time.monotonic()
        result = GenerationResult()
        sampling = args.sampling
        # Only the prompt's checks (e.g. special-token markup in text) are the caller's fault; a
        # ValueError from the engine below is not.
        try:
            choice = self.prompts.choose(args)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        prompt, global_ids = choice.prompt, choice.global_ids
        if choice.head is not None:
            # Two phases: the model writes the voice's globals after the head, then the same
            # sequence goes on with the semantic tokens.
            head_ids = [*self._encode(choice.head), self.table.start_global_id]
            # Fail before any work.
            self.budget.tokens(sampling.max_tokens, len(head_ids) + GLOBAL_TOKENS_PER_VOICE + 1)
            global_ids = await self._generate_globals(
                head_ids, sampling, f"{request_id}-g-{uuid.uuid4().hex[:8]}"
            )
            prompt = self.prompts.after_globals(choice.head, global_ids)
        assert prompt is not None
        prompt_ids = self._encode(prompt)
        # A long reference can leave the text no room: say so before the engine would.
        what = "text" if args.reference is None else _with_reference(args.reference)
        budget = self.budget.tokens(sampling.max_tokens, len(prompt_ids), what)
        result.prompt_tokens = len(prompt_ids)
        if self.table.num_global > 0:
            assert global_ids is not None
            yield Frame(global_ids=list(global_ids))

        extra = {} if self.frame_layout is None else {"extra_args": self.frame_layout.to_args()}
        params = self._params(
            sampling,
            max_tokens=budget + 1,
            min_tokens=min(sampling.min_tokens, budget) + (1 if sampling.min_tokens else 0),
            allowed_token_ids=self._semantic_allowed,
            stop_token_ids=self._end_ids,
            **extra,
        )
        codes = SemanticCodes(self.table, FrameAssembler(self.family.codes_per_token, self.codebook_size))
        async for frame in self.requests.stream(
            {"prompt_token_ids": prompt_ids},
            params,
            f"{request_id}-s-{uuid.uuid4().hex[:8]}",
            codes=codes,
            budget=budget,
            result=result,
            started=started,
        ):
            yield frame


def _with_reference(reference: Reference) -> str:
    return (
        f"text with the voice's reference ({len(reference.text)} characters and "
        f"{len(reference.semantic_ids)} semantic ids)"
    )
