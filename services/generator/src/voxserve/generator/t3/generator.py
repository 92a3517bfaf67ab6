"""Chatterbox speech-token generation: text and a voice in, S3 speech tokens out, streamed as the
engine writes them. A `TokenSource` as `engine.TokenGenerator` is, so the servicer serves either."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from voxserve.common.status import InvalidArgument
from voxserve.families.family import Family
from voxserve.generator.engine_requests import EngineRequests, sampling_params
from voxserve.generator.frames import Frame, GenerationResult
from voxserve.generator.generate_args import GenerateArgs, Sampling
from voxserve.generator.t3.conditioning import T3Conditioner
from voxserve.generator.t3.config import T3Config
from voxserve.generator.t3.guidance import Guidance
from voxserve.generator.t3.text import T3Tokenizer
from voxserve.generator.t3.voice import T3Voice
from voxserve.generator.token_budget import TokenBudget

# Upstream's cap on new speech tokens (40 s at 25 tokens a second).
DEFAULT_MAX_SPEECH_TOKENS = 1000
# S3Gen's vocabulary: ids from here on (the start and stop ids, the rest of T3's 8194) are not speech.
S3_VOCAB = 6561
DEFAULT_GUIDANCE = 0.5
# Upstream Chatterbox's sampling defaults.
T3_SAMPLING = Sampling(top_k=0, top_p=1.0, repetition_penalty=1.2, min_p=0.05, guidance=DEFAULT_GUIDANCE)


class SpeechIds:
    """T3 writes S3 speech ids directly; a sampled start or unused id is dropped."""

    pending = 0

    def read(self, token_ids: Sequence[int]) -> list[int]:
        return [t for t in token_ids if 0 <= t < S3_VOCAB]


class T3Generator:
    num_global = 0
    default_sampling = T3_SAMPLING

    def __init__(
        self,
        llm: Any,
        conditioner: T3Conditioner,
        tokenizer: T3Tokenizer,
        default_voice: T3Voice,
        config: T3Config,
        *,
        family: Family,
        max_model_len: int,
        max_tokens: int,
    ):
        self.llm = llm
        self.requests = EngineRequests(llm)
        self.conditioner = conditioner
        self.tokenizer = tokenizer
        self.default_voice = default_voice
        self.config = config
        self._family = family
        # Prompt rows are embeddings, not tokens; the stop id takes one position; T3's learned
        # speech positions bound a request whatever the model's length.
        self.budget = TokenBudget(
            max_model_len,
            default_tokens=min(max_tokens, DEFAULT_MAX_SPEECH_TOKENS),
            reserved=1,
            unit="rows",
            max_new_tokens=config.max_speech_tokens,
        )

    @property
    def family(self) -> Family:
        return self._family

    @property
    def active_requests(self) -> int:
        return self.requests.active

    def shutdown(self) -> None:
        self.requests.shutdown()

    def _text_ids(self, text: str) -> list[int]:
        ids = self.tokenizer.prompt_ids(text)
        if len(ids) > self.config.max_text_tokens:
            raise InvalidArgument(
                f"text is too long: it is {len(ids)} T3 text tokens; "
                f"the limit is {self.config.max_text_tokens}"
            )
        return ids

    def _params(self, sampling: Sampling, budget: int, room: int) -> Any:
        # The repetition penalty is applied with the guidance (`guidance`), not by vLLM.
        guidance = Guidance(
            weight=DEFAULT_GUIDANCE if sampling.guidance is None else sampling.guidance,
            repetition_penalty=sampling.repetition_penalty,
            start_id=self.config.speech_start,
        )
        return sampling_params(
            sampling,
            # Up to the room, not the budget: the budget counts speech tokens, and a sampled start
            # or unused id is dropped rather than delivered; generation ends at the budget.
            max_tokens=room,
            min_tokens=min(sampling.min_tokens, budget),
            stop_token_ids=[self.config.speech_stop],
            extra_args=guidance.as_args(),
        )

    async def generate(self, args: GenerateArgs, request_id: str) -> AsyncIterator[Frame]:
        started = time.monotonic()
        result = GenerationResult()
        sampling = args.sampling
        voice = args.t3_voice or self.default_voice
        exaggeration = voice.exaggeration if sampling.exaggeration is None else sampling.exaggeration
        text_ids = self._text_ids(args.text)
        prompt_rows = self.config.cond_rows + len(text_ids) + 2
        budget = self.budget.tokens(sampling.max_tokens, prompt_rows)
        embeds = self.conditioner.prompt(voice, text_ids, exaggeration)
        result.prompt_tokens = prompt_rows
        params = self._params(sampling, budget, self.budget.room(prompt_rows))
        async for frame in self.requests.stream(
            {"prompt_embeds": embeds},
            params,
            f"{request_id}-t3-{uuid.uuid4().hex[:8]}",
            codes=SpeechIds(),
            budget=budget,
            result=result,
            started=started,
        ):
            yield frame
