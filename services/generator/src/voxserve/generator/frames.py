"""What a token source streams: frames of token indices, the last one carrying the result."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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


class FrameAssembler:
    """Semantic indices in, whole frames of codes out.

    One code per frame passes straight through. With several, an index is ``position *
    codebook_size + code``; a token out of its place would shift every later code, so one is
    dropped (the frame position logits processor makes that impossible; this is the last line).
    The codes of an incomplete frame wait for the rest.
    """

    def __init__(self, codes_per_frame: int, codebook_size: int):
        self.codes_per_frame = codes_per_frame
        self.codebook_size = codebook_size
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
            position, code = divmod(int(index), self.codebook_size)
            if position != len(self._partial) or not 0 <= code < self.codebook_size:
                self.dropped += 1
                continue
            self._partial.append(code)
            if len(self._partial) == self.codes_per_frame:
                out.extend(self._partial)
                self._partial.clear()
        return out
