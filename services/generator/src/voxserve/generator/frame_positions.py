"""A vLLM logits processor that keeps each generated token in its place within a codec frame.

Orpheus writes a SNAC frame as 7 tokens, and the token at position p of a frame must come from
position p's range of 4096 ids. A model that strays (a fine-tune, an unlucky sample) would
otherwise write a token the decoder has to drop, shifting every later code of the utterance;
the reference streamer drops them and loses frames. Masking every other id makes every sampled
token a valid code, and the end of speech is allowed only between frames, so no utterance ends
on a partial frame.

It is loaded through vLLM's custom logits processor mechanism (the engine's
``logits_processors``) and acts only on requests that ask for it through
``SamplingParams.extra_args[FRAME_ARGS]`` (see `frame_layout`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
from vllm.v1.sample.logits_processor.builtin import process_dict_updates

from voxserve.generator.frame_layout import FRAME_ARGS, FrameLayout

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.config import VllmConfig


class FramePositions(LogitsProcessor):
    def __init__(self, vllm_config: VllmConfig, device: torch.device, is_pin_memory: bool) -> None:
        self.rows: dict[int, tuple[FrameLayout, list[int]]] = {}

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        layout = FrameLayout.from_params(sampling_params)
        if layout is not None and (layout.codes < 1 or layout.positions < 1 or layout.first_id < 0):
            raise ValueError(f"{FRAME_ARGS}: codes and positions must be positive, first_id not negative")

    def is_argmax_invariant(self) -> bool:
        return False  # it changes which token wins, greedy decoding included

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        def state(params: SamplingParams, _prompt: Any, output: list[int]) -> Any:
            layout = FrameLayout.from_params(params)
            return None if layout is None else (layout, output)

        process_dict_updates(self.rows, batch_update, state)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        by_layout: dict[FrameLayout, list[tuple[int, int]]] = {}
        for row, (layout, output) in self.rows.items():
            # The output list includes placeholders for tokens still being sampled, so its length
            # is the position of the token being chosen now.
            by_layout.setdefault(layout, []).append((row, len(output) % layout.positions))
        # One mask per layout (usually one for the whole batch): a few tensor ops per step,
        # whatever the number of rows.
        vocab = torch.arange(logits.shape[1], device=logits.device)
        for layout, members in by_layout.items():
            rows = torch.tensor([row for row, _ in members], device=logits.device)
            positions = torch.tensor([position for _, position in members], device=logits.device)
            starts = (layout.first_id + positions * layout.codes)[:, None]
            keep = (vocab >= starts) & (vocab < starts + layout.codes)
            if layout.end_ids:
                ends = torch.zeros_like(vocab, dtype=torch.bool)
                ends[list(layout.end_ids)] = True
                keep |= (positions == 0)[:, None] & ends
            logits[rows] = logits[rows].masked_fill(~keep, float("-inf"))
        return logits
