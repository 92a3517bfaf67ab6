"""Speech-token generation on vLLM's async engine (Spark, s3 and Orpheus families).

Generation is constrained to the token grammar of the family. Spark: a controllable voice (or a
named speaker of a fine-tune) first samples exactly 32 global tokens (allowed ids: the globals),
then the same sequence continues with the semantic tokens (allowed ids: semantic tokens and the
end markers). s3: the prompt is the text alone and the model writes speech tokens up to its end
marker; the voice is the vocoder's. Orpheus: the prompt names the voice; every token is held to
its place in a 7-code SNAC frame (`frame_positions`) and the end comes only between frames. A
trained model puts its mass there anyway; constraining keeps a fine-tune's stray token from ever
reaching the vocoder. Outputs are DELTA: each engine step's new tokens become one frame without
waiting (Orpheus: each step's whole SNAC frames).
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
from voxserve.families.speakers import SpeakerSet
from voxserve.generator.frame_layout import FrameLayout
from voxserve.generator.prompts import (
    GLOBAL_TOKENS_PER_VOICE,
    Gender,
    SparkPromptBuilder,
    orpheus_prompt,
    s3_prompt,
)
from voxserve.generator.token_table import (
    ORPHEUS_CODEBOOK_SIZE,
    ORPHEUS_FRAME_CODES,
    TokenKind,
    TokenTable,
)

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
    min_p: float = 0.0
    guidance: float | None = None
    """Chatterbox's classifier-free guidance weight."""
    exaggeration: float | None = None
    """Chatterbox's emotion exaggeration; None keeps the voice's."""


SPARK_SAMPLING = Sampling()
# Upstream Chatterbox's defaults.
CHATTERBOX_SAMPLING = Sampling(top_k=0, top_p=1.0, repetition_penalty=1.2, min_p=0.05, guidance=0.5)


@dataclass(frozen=True)
class Style:
    gender: Gender = "female"
    pitch: int = 2
    speed: int = 2


@dataclass(frozen=True)
class Speaker:
    """A named speaker; ``global_ids`` (Spark fine-tunes) prefill the voice of a later segment."""

    name: str
    global_ids: tuple[int, ...] = ()


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


async def run_engine_request(
    llm: Any, prompt: dict[str, Any], params: Any, request_id: str, active: set[str]
) -> AsyncIterator[Any]:
    """One engine request, listed in `active` while it runs; aborted if the consumer goes away
    before it finishes."""
    finished = False
    active.add(request_id)
    try:
        async for output in llm.generate(prompt, params, request_id):
            finished = output.finished
            yield output
    finally:
        active.discard(request_id)
        if not finished:
            log.info("aborting engine request", engine_request_id=request_id)
            await llm.abort(request_id)


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


class TokenGenerator:
    """Turns (text, voice, sampling) into a stream of token frames on a shared vLLM engine."""

    def __init__(
        self,
        llm: Any,
        tokenizer: Any,
        table: TokenTable,
        *,
        max_model_len: int,
        max_tokens: int,
        speakers: SpeakerSet | None = None,
    ):
        self.llm = llm
        self.tokenizer = tokenizer
        self.table = table
        self.max_model_len = max_model_len
        self.max_tokens = max_tokens
        self.speakers = speakers
        self.prompts = SparkPromptBuilder.from_token_table(table)
        self._end_ids = [table.end_semantic_id, table.eos_id]
        self._global_allowed = [int(i) for i in table.global_ids]
        # The start marker is allowed (and skipped): after Spark's globals the model may write it.
        self._semantic_allowed = (
            [int(i) for i in table.semantic_ids] + self._end_ids + [table.start_semantic_id]
        )
        self.frame_layout = self._frame_layout() if table.family == "orpheus" else None
        self._active: set[str] = set()

    @property
    def family(self) -> str:
        return self.table.family

    @property
    def num_global(self) -> int:
        return self.table.num_global

    @property
    def default_sampling(self) -> Sampling:
        return SPARK_SAMPLING

    @property
    def codes_per_frame(self) -> int:
        """Tokens per vocoder token: 7 for Orpheus's SNAC frames, 1 otherwise."""
        return ORPHEUS_FRAME_CODES if self.frame_layout is not None else 1

    @property
    def active_requests(self) -> int:
        return len(self._active)

    def _frame_layout(self) -> FrameLayout:
        ids = self.table.semantic_ids
        first = int(ids[0])
        # The logits processor masks by id range, so position p's codes must be consecutive ids.
        if not np.array_equal(ids, np.arange(first, first + len(ids))):
            raise ValueError("the tokenizer's Orpheus audio tokens do not have consecutive ids")
        return FrameLayout(
            first_id=first,
            codes=ORPHEUS_CODEBOOK_SIZE,
            positions=ORPHEUS_FRAME_CODES,
            end_ids=tuple(self._end_ids),
        )

    def _encode(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def _semantic_budget(self, sampling: Sampling, prompt_len: int) -> int:
        room = self.max_model_len - prompt_len - 2  # the start and end markers
        per = self.codes_per_frame
        if sampling.max_tokens is None:
            budget = min(self.max_tokens, room) // per * per
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
        if sampling.max_tokens < per:
            raise InvalidArgument(
                f"sampling.max_tokens={sampling.max_tokens} is less than one {self.family} frame "
                f"({per} tokens)"
            )
        return sampling.max_tokens // per * per

    def _params(self, sampling: Sampling, **overrides: Any) -> Any:
        return sampling_params(sampling, repetition_penalty=sampling.repetition_penalty, **overrides)

    def _run(self, prompt_ids: list[int], params: Any, request_id: str) -> AsyncIterator[Any]:
        return run_engine_request(
            self.llm, {"prompt_token_ids": prompt_ids}, params, request_id, self._active
        )

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

    def _speaker_name(self, speaker: Speaker | None) -> str:
        if speaker is None:
            if self.speakers is None:
                raise InvalidArgument("speaker is required: this pack's prompt names a speaker")
            return self.speakers.names[0]
        if self.speakers is not None:
            self.speakers.check(speaker.name)
        return speaker.name

    def _prompt(
        self, text: str, global_ids: list[int] | None, style: Style | None, speaker: Speaker | None
    ) -> tuple[str | None, str | None]:
        """(the whole prompt, or None) and (the head the model writes its globals after, or None)."""
        if self.family == "s3":
            return s3_prompt(text), None
        if self.family == "orpheus":
            return orpheus_prompt(text, self._speaker_name(speaker)), None
        if global_ids is not None:
            return self.prompts.fixed_voice(text, global_ids), None
        if self.speakers is not None or speaker is not None:
            if self.speakers is None:
                raise InvalidArgument("speaker is not accepted: this pack has no named speakers")
            if style is not None:
                raise InvalidArgument(
                    f"style is not accepted: this pack names its speakers ({', '.join(self.speakers.names)})"
                )
            name = self._speaker_name(speaker)
            if speaker is not None and speaker.global_ids:
                return self.prompts.speaker_with_globals(text, self.speakers, name, speaker.global_ids), None
            return None, self.prompts.speaker(text, self.speakers, name)
        style = style or Style()
        return None, self.prompts.controllable(text, style.gender, style.pitch, style.speed)

    async def generate(
        self,
        text: str,
        *,
        global_ids: list[int] | None,
        style: Style | None,
        sampling: Sampling,
        request_id: str,
        speaker: Speaker | None = None,
    ) -> AsyncIterator[Frame]:
        started = time.monotonic()
        result = GenerationResult()
        # Only the prompt builder's checks (e.g. special-token markup in text) are the caller's
        # fault; a ValueError from the engine below is not.
        try:
            prompt, head = self._prompt(text, global_ids, style, speaker)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        if head is not None:
            # Two phases: the model writes the voice's 32 globals after the head, then the same
            # sequence goes on with the semantic tokens.
            head_ids = [*self._encode(head), self.table.start_global_id]
            self._semantic_budget(sampling, len(head_ids) + NUM_GLOBAL_TOKENS + 1)  # fail before any work
            global_ids = await self._generate_globals(
                head_ids, sampling, f"{request_id}-g-{uuid.uuid4().hex[:8]}"
            )
            prompt = head + self.prompts.global_block(global_ids)
        elif speaker is not None and speaker.global_ids:
            global_ids = list(speaker.global_ids)
        assert prompt is not None
        prompt_ids = self._encode(prompt)
        budget = self._semantic_budget(sampling, len(prompt_ids))
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
        engine_id = f"{request_id}-s-{uuid.uuid4().hex[:8]}"
        frames = FrameAssembler(self.codes_per_frame)
        async for output in self._run(prompt_ids, params, engine_id):
            completion = output.outputs[0]
            kinds, indices = self.table.classify(list(completion.token_ids))
            semantic = frames.add(indices[kinds == TokenKind.SEMANTIC])[: budget - result.semantic_tokens]
            if semantic:
                if not result.semantic_tokens:
                    result.first_token_seconds = time.monotonic() - started
                result.semantic_tokens += len(semantic)
                yield Frame(semantic_ids=semantic)
            if output.finished:
                result.finish_reason = "length" if completion.finish_reason == "length" else "stop"
                result.queue_seconds = queue_seconds(output)
            if result.semantic_tokens >= budget and not output.finished:
                result.finish_reason = "length"  # the start marker is optional; stop at the budget
                break
        if frames.pending:
            log.warning("dropped a partial frame", codes=frames.pending, engine_request_id=engine_id)
        result.total_seconds = time.monotonic() - started
        yield Frame(result=result)


class FrameAssembler:
    """Semantic indices in, whole frames of codes out.

    One code per frame passes straight through. For Orpheus an index is ``position * 4096 +
    code``; a token out of its place would shift every later code, so one is dropped (the frame
    position logits processor makes that impossible; this is the last line). The codes of an
    incomplete frame wait for the rest.
    """

    def __init__(self, codes_per_frame: int):
        self.codes_per_frame = codes_per_frame
        self._partial: list[int] = []
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._partial)

    def add(self, indices: np.ndarray) -> list[int]:
        if self.codes_per_frame == 1:
            return [int(i) for i in indices]
        out: list[int] = []
        for index in indices:
            position, code = divmod(int(index), ORPHEUS_CODEBOOK_SIZE)
            if position != len(self._partial) or not 0 <= code < ORPHEUS_CODEBOOK_SIZE:
                self.dropped += 1
                continue
            self._partial.append(code)
            if len(self._partial) == self.codes_per_frame:
                out.extend(self._partial)
                self._partial.clear()
        return out
