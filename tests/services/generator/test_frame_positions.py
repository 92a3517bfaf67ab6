"""The frame position logits processor, driven through vLLM's own batch-update interface."""

from __future__ import annotations

import pytest
import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

from voxserve.generator.frame_layout import FrameLayout
from voxserve.generator.frame_positions import FramePositions

LAYOUT = FrameLayout(first_id=10, codes=4, positions=3, end_ids=(2, 3))
VOCAB = 10 + 4 * 3 + 2


def params(layout: FrameLayout | None = LAYOUT) -> SamplingParams:
    return SamplingParams(extra_args=layout.to_args() if layout else None)


def processor() -> FramePositions:
    return FramePositions(None, torch.device("cpu"), False)  # type: ignore[arg-type]


def allowed(logits: torch.Tensor, row: int) -> set[int]:
    return set(torch.nonzero(torch.isfinite(logits[row])).flatten().tolist())


def test_each_position_allows_its_own_codes_and_the_end_only_between_frames() -> None:
    lp = processor()
    output: list[int] = []
    lp.update_state(BatchUpdate(batch_size=1, removed=[], added=[(0, params(), [1], output)], moved=[]))
    seen = []
    for _ in range(4):
        logits = lp.apply(torch.zeros(1, VOCAB))
        seen.append(allowed(logits, 0))
        output.append(-1)  # the token being sampled: a placeholder counts as generated
    assert seen == [{10, 11, 12, 13, 2, 3}, {14, 15, 16, 17}, {18, 19, 20, 21}, {10, 11, 12, 13, 2, 3}]


def test_rows_of_different_layouts_in_one_batch_each_get_their_own_mask() -> None:
    other = FrameLayout(first_id=0, codes=2, positions=2, end_ids=(23,))
    lp = processor()
    added = [(0, params(), [1], [0, 0, 0]), (1, params(other), [1], [0])]
    lp.update_state(BatchUpdate(batch_size=2, removed=[], added=added, moved=[]))
    logits = lp.apply(torch.zeros(2, VOCAB))
    assert allowed(logits, 0) == {10, 11, 12, 13, 2, 3} and allowed(logits, 1) == {2, 3}


def test_the_kept_logits_are_unchanged() -> None:
    lp = processor()
    lp.update_state(BatchUpdate(batch_size=1, removed=[], added=[(0, params(), [1], [0])], moved=[]))
    logits = torch.randn(1, VOCAB)
    before = logits.clone()
    after = lp.apply(logits)
    assert torch.equal(after[0, 14:18], before[0, 14:18])


def test_rows_without_the_layout_are_left_alone_and_rows_follow_moves_and_removals() -> None:
    lp = processor()
    framed: list[int] = [0]
    added = [(0, params(None), [1], []), (1, params(), [1], framed)]
    lp.update_state(BatchUpdate(batch_size=2, removed=[], added=added, moved=[]))
    logits = lp.apply(torch.zeros(2, VOCAB))
    assert allowed(logits, 0) == set(range(VOCAB)) and allowed(logits, 1) == {14, 15, 16, 17}
    lp.update_state(BatchUpdate(batch_size=2, removed=[], added=[], moved=[(0, 1, MoveDirectionality.SWAP)]))
    logits = lp.apply(torch.zeros(2, VOCAB))
    assert allowed(logits, 0) == {14, 15, 16, 17} and allowed(logits, 1) == set(range(VOCAB))
    lp.update_state(BatchUpdate(batch_size=1, removed=[0], added=[], moved=[]))
    assert allowed(lp.apply(torch.zeros(1, VOCAB)), 0) == set(range(VOCAB))


def test_a_bad_layout_is_refused_at_the_engine_boundary() -> None:
    bad = FrameLayout(first_id=10, codes=0, positions=7, end_ids=())
    with pytest.raises(ValueError, match="codes and positions must be positive"):
        FramePositions.validate_params(params(bad))
    FramePositions.validate_params(params())
    FramePositions.validate_params(params(None))


def test_the_layout_round_trips_through_sampling_params() -> None:
    assert FrameLayout.from_params(params()) == LAYOUT
    assert FrameLayout.from_params(params(None)) is None
