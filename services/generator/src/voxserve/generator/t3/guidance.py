"""Classifier-free guidance and T3's repetition penalty, as a vLLM logits processor.

The T3 model returns each row's conditioned and unconditional logits side by side
([rows, 2 * speech_vocab]). This processor is not argmax-invariant, so it runs before vLLM's
temperature, min_p and top_p, and the order is upstream's: guidance with the request's own weight,
`cond + w * (cond - uncond)`, then the repetition penalty over the generated ids including the
speech start id, then vLLM's temperature, min_p and top_p. The second half of every row is set to
-inf, so only speech ids can be sampled. vLLM's built-in min_tokens processor runs before it and
bans the stop id by setting its cond logit to -inf; such an id stays -inf here at every weight.

The repetition penalty is done here rather than by vLLM's own because vLLM's counts prompt ids,
and a T3 prompt has none that are speech tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates
from vllm.v1.sample.logits_processor.interface import MoveDirectionality

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.config import VllmConfig

from voxserve.generator.t3.config import MAX_GUIDANCE

GUIDANCE_ARGS = "t3_guidance"
MAX_REPETITION_PENALTY = 10.0


@dataclass(frozen=True)
class Guidance:
    weight: float
    repetition_penalty: float
    start_id: int

    def as_args(self) -> dict[str, Any]:
        return {
            GUIDANCE_ARGS: {
                "weight": self.weight,
                "repetition_penalty": self.repetition_penalty,
                "start_id": self.start_id,
            }
        }

    @classmethod
    def from_params(cls, params: SamplingParams) -> Guidance | None:
        raw = (params.extra_args or {}).get(GUIDANCE_ARGS)
        if raw is None:
            return None
        try:
            return cls(float(raw["weight"]), float(raw["repetition_penalty"]), int(raw["start_id"]))
        except (KeyError, TypeError, ValueError) as exc:
            needs = "a number for weight, repetition_penalty and start_id"
            raise ValueError(f"{GUIDANCE_ARGS} needs {needs}") from exc


@dataclass
class _Row:
    guidance: Guidance
    output: list[int]
    counted: int = 0


class GuidanceProcessor(LogitsProcessor):
    def __init__(self, vllm_config: VllmConfig, device: torch.device, is_pin_memory: bool) -> None:
        self.rows: dict[int, _Row] = {}
        self.vocab = vllm_config.model_config.get_vocab_size() // 2
        # Which ids each batch row has generated (its start id included); rows follow the batch.
        self.seen = torch.zeros(
            vllm_config.scheduler_config.max_num_seqs, self.vocab, dtype=torch.bool, device=device
        )
        self.device = device

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        guidance = Guidance.from_params(sampling_params)
        if guidance is None:
            return
        if not (math.isfinite(guidance.weight) and 0 <= guidance.weight <= MAX_GUIDANCE):
            raise ValueError(f"guidance weight must lie in [0, {MAX_GUIDANCE}]")
        if guidance.start_id < 0:
            raise ValueError("start_id must not be negative")
        if not (0 < guidance.repetition_penalty <= MAX_REPETITION_PENALTY):
            raise ValueError(f"repetition_penalty must lie in (0, {MAX_REPETITION_PENALTY}]")

    def is_argmax_invariant(self) -> bool:
        return False

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        for index, params, _prompt, _output in batch_update.added:
            self.seen[index] = False
            guidance = Guidance.from_params(params)
            if guidance is not None:
                self.seen[index, guidance.start_id] = True
        for a, b, direction in batch_update.moved:
            if direction == MoveDirectionality.SWAP:
                self.seen[[a, b]] = self.seen[[b, a]]
            else:
                self.seen[b] = self.seen[a]

        def state(params: SamplingParams, _prompt: Any, output: list[int]) -> _Row | None:
            guidance = Guidance.from_params(params)
            return None if guidance is None else _Row(guidance, output)

        process_dict_updates(self.rows, batch_update, state)

    def _mark_new_tokens(self) -> None:
        marks: list[tuple[int, int]] = []
        for index, row in self.rows.items():
            output = row.output
            # Stop at a placeholder (negative) for a token still being sampled; it is read later.
            while row.counted < len(output) and output[row.counted] >= 0:
                if output[row.counted] < self.vocab:
                    marks.append((index, output[row.counted]))
                row.counted += 1
        if marks:
            where = torch.tensor(marks, device=self.device)
            self.seen[where[:, 0], where[:, 1]] = True

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        rows = logits.shape[0]
        weights = torch.zeros(rows, 1, dtype=logits.dtype)
        penalties = torch.ones(rows, 1, dtype=logits.dtype)
        for index, row in self.rows.items():
            if index < rows:
                weights[index, 0] = row.guidance.weight
                penalties[index, 0] = row.guidance.repetition_penalty
        weights, penalties = weights.to(logits.device), penalties.to(logits.device)
        cond, uncond = logits[:, : self.vocab], logits[:, self.vocab :]
        # An id an earlier processor banned stays banned: at weight 0, -inf + 0 * (-inf - uncond) is NaN.
        guided = torch.where(torch.isneginf(cond), cond, cond + weights * (cond - uncond))
        self._mark_new_tokens()
        penalised = torch.where(guided < 0, guided * penalties, guided / penalties)
        guided = torch.where(self.seen[:rows], penalised, guided)
        logits[:, : self.vocab] = guided
        logits[:, self.vocab :] = float("-inf")
        return logits
