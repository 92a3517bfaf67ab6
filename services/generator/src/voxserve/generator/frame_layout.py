"""Where a codec frame's tokens live in the vocabulary, as a request tells the frame position
logits processor (`frame_positions`) through ``SamplingParams.extra_args``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vllm import SamplingParams

FRAME_ARGS = "voxserve_frame"


@dataclass(frozen=True)
class FrameLayout:
    """Where a frame's tokens live in the vocabulary: position p's codes are the ids
    ``first_id + p * codes .. first_id + (p + 1) * codes - 1``."""

    first_id: int
    codes: int
    positions: int
    end_ids: tuple[int, ...]

    def to_args(self) -> dict[str, Any]:
        return {FRAME_ARGS: {**self.__dict__, "end_ids": list(self.end_ids)}}

    @classmethod
    def from_params(cls, params: SamplingParams) -> FrameLayout | None:
        args = (params.extra_args or {}).get(FRAME_ARGS)
        if args is None:
            return None
        return cls(
            first_id=int(args["first_id"]),
            codes=int(args["codes"]),
            positions=int(args["positions"]),
            end_ids=tuple(int(i) for i in args["end_ids"]),
        )
