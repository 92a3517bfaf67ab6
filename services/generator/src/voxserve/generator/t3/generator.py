"""Chatterbox speech-token generation: text and a voice in, S3 speech tokens out, streamed as the
engine writes them. The same interface as `engine.TokenGenerator`, so the servicer serves either."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from voxserve.common.status import InvalidArgument
from voxserve.generator.engine import (
    CHATTERBOX_SAMPLING,
    Frame,
    GenerationResult,
    Sampling,
    queue_seconds,
    run_engine_request,
    sampling_params,
)
from voxserve.generator.t3.conditioning import T3Conditioner
from voxserve.generator.t3.config import T3Config
from voxserve.generator.t3.guidance import Guidance
from voxserve.generator.t3.text import T3Tokenizer
from voxserve.generator.t3.voice import T3Voice

# Upstream's cap on new speech tokens (40 s at 25 tokens a second).
DEFAULT_MAX_SPEECH_TOKENS = 1000
# S3Gen's vocabulary: ids from here on (the start and stop ids, the rest of T3's 8194) are not speech.
S3_VOCAB = 6561


class T3Generator:
    family = "chatterbox"
    num_global = 0
    codes_per_frame = 1
    default_sampling = CHATTERBOX_SAMPLING

    def __init__(
        self,
        llm: Any,
        conditioner: T3Conditioner,
        tokenizer: T3Tokenizer,
        default_voice: T3Voice,
        config: T3Config,
        *,
        max_model_len: int,
        max_tokens: int,
    ):
        self.llm = llm
        self.conditioner = conditioner
        self.tokenizer = tokenizer
        self.default_voice = default_voice
        self.config = config
        self.max_model_len = max_model_len
        self.max_tokens = max_tokens
        self._active: set[str] = set()

    @property
    def active_requests(self) -> int:
        return len(self._active)

    def _text_ids(self, text: str) -> list[int]:
        ids = self.tokenizer.prompt_ids(text)
        if len(ids) > self.config.max_text_tokens:
            raise InvalidArgument(
                f"text is too long: it is {len(ids)} T3 text tokens; "
                f"the limit is {self.config.max_text_tokens}"
            )
        return ids

    def _room(self, prompt_rows: int) -> int:
        """Engine steps the request may take: the model's length and T3's speech positions."""
        return min(self.max_model_len - prompt_rows, self.config.max_speech_tokens)

    def _budget(self, sampling: Sampling, prompt_rows: int) -> int:
        """Speech tokens to deliver (ids T3 writes that are not speech are not counted)."""
        room = self._room(prompt_rows) - 1  # the stop id
        if sampling.max_tokens is None:
            budget = min(self.max_tokens, DEFAULT_MAX_SPEECH_TOKENS, room)
            if budget < 1:
                raise InvalidArgument(
                    f"text is too long: its prompt takes {prompt_rows} "
                    f"of the model's {self.max_model_len} rows"
                )
            return budget
        if sampling.max_tokens > room:
            raise InvalidArgument(
                f"sampling.max_tokens={sampling.max_tokens} does not fit: the prompt takes {prompt_rows} "
                f"of the model's {self.max_model_len} rows, leaving {max(room, 0)}"
            )
        return sampling.max_tokens

    def _params(self, sampling: Sampling, budget: int, room: int) -> Any:
        # The repetition penalty is applied with the guidance (`guidance`), not by vLLM.
        guidance = Guidance(
            weight=CHATTERBOX_SAMPLING.guidance if sampling.guidance is None else sampling.guidance,  # type: ignore[arg-type]
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

    async def generate(
        self,
        text: str,
        *,
        sampling: Sampling,
        request_id: str,
        chatterbox: T3Voice | None = None,
        **_unused_voices: Any,
    ) -> AsyncIterator[Frame]:
        started = time.monotonic()
        result = GenerationResult()
        voice = chatterbox or self.default_voice
        exaggeration = voice.exaggeration if sampling.exaggeration is None else sampling.exaggeration
        text_ids = self._text_ids(text)
        prompt_rows = self.config.cond_rows + len(text_ids) + 2
        budget = self._budget(sampling, prompt_rows)
        embeds = self.conditioner.prompt(voice, text_ids, exaggeration)
        result.prompt_tokens = prompt_rows
        params = self._params(sampling, budget, self._room(prompt_rows))
        engine_id = f"{request_id}-t3-{uuid.uuid4().hex[:8]}"
        async for output in run_engine_request(
            self.llm, {"prompt_embeds": embeds}, params, engine_id, self._active
        ):
            completion = output.outputs[0]
            speech = [t for t in completion.token_ids if 0 <= t < S3_VOCAB][: budget - result.semantic_tokens]
            if speech:
                if not result.semantic_tokens:
                    result.first_token_seconds = time.monotonic() - started
                result.semantic_tokens += len(speech)
                yield Frame(semantic_ids=speech)
            if output.finished:
                result.finish_reason = "length" if completion.finish_reason == "length" else "stop"
                result.queue_seconds = queue_seconds(output)
            if result.semantic_tokens >= budget and not output.finished:
                result.finish_reason = "length"
                break
        result.total_seconds = time.monotonic() - started
        yield Frame(result=result)
