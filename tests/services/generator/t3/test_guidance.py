"""T3's guidance logits processor, driven through vLLM's own batch-update interface.

Every expectation is computed independently: guidance as `cond + w * (cond - uncond)` on one row,
then the reference's HF repetition penalty over the distinct speech ids the row has seen.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality
from vllm.v1.sample.logits_processor.builtin import MinTokensLogitsProcessor

from tests.services.generator.t3.reference import apply_repetition_penalty
from voxserve.generator.t3.config import MAX_GUIDANCE
from voxserve.generator.t3.guidance import MAX_REPETITION_PENALTY, Guidance, GuidanceProcessor

VOCAB = 10  # speech ids; the model's logits rows hold 2 * VOCAB (cond, then uncond)
MAX_SEQS = 4
START = 8


def processor_config() -> Any:
    """What the processors read of a `VllmConfig`."""
    return SimpleNamespace(
        model_config=SimpleNamespace(get_vocab_size=lambda: 2 * VOCAB),
        scheduler_config=SimpleNamespace(max_num_seqs=MAX_SEQS),
    )


def processor() -> GuidanceProcessor:
    return GuidanceProcessor(processor_config(), torch.device("cpu"), False)


def guidance(weight: float = 0.5, penalty: float = 1.2, start_id: int = START) -> Guidance:
    return Guidance(weight=weight, repetition_penalty=penalty, start_id=start_id)


def params(g: Guidance | None) -> SamplingParams:
    return SamplingParams(extra_args=g.as_args() if g else None)


def add(lp: GuidanceProcessor, batch_size: int, *rows: tuple[int, Guidance | None, list[int]]) -> None:
    added = [(index, params(g), None, output) for index, g, output in rows]
    lp.update_state(BatchUpdate(batch_size=batch_size, removed=[], added=added, moved=[]))


def logits_for(rows: int, seed: int = 0) -> torch.Tensor:
    """Random logits of both signs, so both branches of the penalty are exercised."""
    return torch.randn(rows, 2 * VOCAB, generator=torch.Generator().manual_seed(seed)) * 3


def flat(token: int, value: float) -> torch.Tensor:
    """Zero logits but for `token`, equal in both halves: guidance leaves it at `value`."""
    logits = torch.zeros(1, 2 * VOCAB)
    logits[0, token] = logits[0, VOCAB + token] = value
    return logits


def expected_row(row: torch.Tensor, g: Guidance | None, ids: list[int]) -> torch.Tensor:
    cond, uncond = row[:VOCAB], row[VOCAB:]
    if g is None:
        return cond.clone()
    guided = cond + g.weight * (cond - uncond)
    return apply_repetition_penalty(
        guided, [g.start_id, *(i for i in ids if 0 <= i < VOCAB)], g.repetition_penalty
    )


def check(
    lp: GuidanceProcessor, rows: list[tuple[Guidance | None, list[int]]], seed: int = 0
) -> torch.Tensor:
    """Apply the processor to fresh logits and compare every row with the independent result."""
    logits = logits_for(len(rows), seed)
    before = logits.clone()
    out = lp.apply(logits)
    for index, (g, ids) in enumerate(rows):
        torch.testing.assert_close(out[index, :VOCAB], expected_row(before[index], g, ids))
    assert torch.all(out[:, VOCAB:] == float("-inf"))
    return out


def test_guidance_uses_each_rows_own_weight_and_bans_the_second_half() -> None:
    lp = processor()
    rows = [guidance(0.5, 1.0), guidance(2.0, 1.0), guidance(0.0, 1.0)]
    add(lp, 3, *((i, g, []) for i, g in enumerate(rows)))
    logits = logits_for(3)
    cond, uncond = logits[:, :VOCAB].clone(), logits[:, VOCAB:].clone()
    out = lp.apply(logits)
    for index, weight in enumerate((0.5, 2.0, 0.0)):
        torch.testing.assert_close(out[index, :VOCAB], cond[index] + weight * (cond[index] - uncond[index]))
    assert not torch.allclose(out[0, :VOCAB], out[1, :VOCAB])
    assert out.shape == (3, 2 * VOCAB)
    assert torch.isneginf(out[:, VOCAB:]).all()


def test_rows_without_guidance_get_their_cond_logits_unpenalised() -> None:
    lp = processor()
    plain: list[int] = [1, 2, 3]
    add(lp, 2, (0, None, plain), (1, guidance(1.5, 2.0), [1]))
    logits = logits_for(2)
    cond = logits[0, :VOCAB].clone()
    out = lp.apply(logits)
    torch.testing.assert_close(out[0, :VOCAB], cond, rtol=0, atol=0)
    assert torch.isneginf(out[0, VOCAB:]).all()
    check(lp, [(None, plain), (guidance(1.5, 2.0), [1])], seed=1)


@pytest.mark.parametrize("weight", [0.0, 0.5, MAX_GUIDANCE])
def test_the_stop_id_banned_by_min_tokens_stays_banned(weight: float) -> None:
    """vLLM's min_tokens processor runs before this one (built-ins come first) and sets the stop
    id's cond logit to -inf; at weight 0, `cond + 0 * (cond - uncond)` alone would make it NaN,
    which greedy argmax would pick."""
    stop = 9
    min_tokens = MinTokensLogitsProcessor(processor_config(), torch.device("cpu"), False)
    lp = processor()
    guided = SamplingParams(min_tokens=2, stop_token_ids=[stop], extra_args=guidance(weight).as_args())
    plain = SamplingParams(min_tokens=2, stop_token_ids=[stop])
    update = BatchUpdate(
        batch_size=2, removed=[], added=[(0, guided, None, []), (1, plain, None, [])], moved=[]
    )
    for each in (min_tokens, lp):
        each.update_state(update)
    logits = logits_for(2)
    logits[:, stop] = logits[:, VOCAB + stop] = 100.0  # the stop id would win but for min_tokens
    out = lp.apply(min_tokens.apply(logits))
    assert not torch.isnan(out).any()
    assert torch.isneginf(out[:, stop]).all()
    assert torch.isfinite(out[:, :stop]).all()
    assert (out.argmax(dim=1) != stop).all()


def test_the_start_id_is_penalised_from_the_moment_the_request_is_added() -> None:
    lp = processor()
    add(lp, 2, (0, guidance(0.0, 2.0), []), (1, guidance(0.0, 2.0), []))
    logits = torch.zeros(2, 2 * VOCAB)
    logits[0, START] = 3.0  # positive: divided
    logits[1, START] = -3.0  # negative: multiplied
    logits[:, 1] = 5.0  # unseen: untouched
    out = lp.apply(logits)
    assert out[0, START].item() == 1.5 and out[1, START].item() == -6.0
    assert out[0, 1].item() == 5.0 and out[1, 1].item() == 5.0


def test_generated_ids_are_penalised_once_each_including_ids_appended_between_steps() -> None:
    lp = processor()
    g = guidance(0.7, 1.5)
    output: list[int] = []
    add(lp, 1, (0, g, output))
    for step, token in enumerate([3, 3, 5, 3, START, 0]):
        check(lp, [(g, output)], seed=step)
        output.append(token)  # the engine appends to the live list between steps
    check(lp, [(g, output)], seed=99)
    # Penalised once, not once per occurrence: id 3 (three times in the output) gets p, not p**3.
    assert lp.apply(flat(3, 4.5))[0, 3].item() == pytest.approx(3.0)


def test_a_resumed_request_counts_the_output_it_already_has() -> None:
    lp = processor()
    g = guidance(1.0, 1.3)
    add(lp, 1, (0, g, [2, 4, 6]))
    check(lp, [(g, [2, 4, 6])])


def test_a_placeholder_is_not_counted_until_the_real_id_replaces_it() -> None:
    lp = processor()
    g = guidance(0.5, 2.0)
    output: list[int] = [1]
    add(lp, 1, (0, g, output))
    output.append(-1)  # async scheduling: the token still being sampled
    check(lp, [(g, [1])])
    assert lp.apply(flat(4, 4.0))[0, 4].item() == 4.0
    output[-1] = 4  # the real id arrives, and the next placeholder after it
    output.append(-1)
    check(lp, [(g, [1, 4])], seed=1)
    assert lp.apply(flat(4, 4.0))[0, 4].item() == 2.0


def test_ids_outside_the_speech_vocab_are_ignored() -> None:
    lp = processor()
    g = guidance(0.5, 1.7)
    output = [VOCAB, 2 * VOCAB - 1, 3, VOCAB + 3]
    add(lp, 1, (0, g, output))
    out = check(lp, [(g, [3])])
    assert out.shape == (1, 2 * VOCAB)


def test_an_added_row_starts_afresh_where_a_removed_row_was() -> None:
    lp = processor()
    old = guidance(0.5, 2.0, start_id=1)
    add(lp, 3, (0, guidance(), [2]), (1, guidance(), [3]), (2, old, [4, 5]))
    check(lp, [(guidance(), [2]), (guidance(), [3]), (old, [4, 5])])
    # The last request finishes: nothing moves.
    lp.update_state(BatchUpdate(batch_size=2, removed=[2], added=[], moved=[]))
    check(lp, [(guidance(), [2]), (guidance(), [3])], seed=1)
    # A plain request takes the freed slot: none of the old row's weight or seen ids apply.
    add(lp, 3, (2, None, []))
    check(lp, [(guidance(), [2]), (guidance(), [3]), (None, [])], seed=2)
    # And a guided one after it sees only its own start id, not ids 1, 4 and 5 of the old row.
    lp.update_state(BatchUpdate(batch_size=2, removed=[2], added=[], moved=[]))
    new = guidance(1.0, 1.5, start_id=6)
    add(lp, 3, (2, new, []))
    check(lp, [(guidance(), [2]), (guidance(), [3]), (new, [])], seed=3)


def test_a_row_moved_into_a_freed_slot_carries_its_state() -> None:
    lp = processor()
    a, b, c = guidance(0.5, 1.4, start_id=0), guidance(2.5, 1.9, start_id=1), guidance(1.0, 3.0, start_id=2)
    out_a, out_b, out_c = [3], [4], [5, 6]
    add(lp, 3, (0, a, out_a), (1, b, out_b), (2, c, out_c))
    check(lp, [(a, out_a), (b, out_b), (c, out_c)])
    # Row 1 finishes; vLLM condenses the batch by moving row 2 down into it.
    update = BatchUpdate(
        batch_size=2, removed=[], added=[], moved=[(2, 1, MoveDirectionality.UNIDIRECTIONAL)]
    )
    lp.update_state(update)
    out_c.append(7)  # generated after the move: still counted for the moved row
    check(lp, [(a, out_a), (c, [5, 6, 7])], seed=1)


def test_a_swap_carries_each_rows_state_both_ways() -> None:
    lp = processor()
    a, b = guidance(0.5, 1.4, start_id=0), guidance(2.5, 1.9, start_id=1)
    out_a, out_b, out_plain = [3, 4], [5], [6]
    add(lp, 3, (0, a, out_a), (1, b, out_b), (2, None, out_plain))
    check(lp, [(a, out_a), (b, out_b), (None, out_plain)])
    lp.update_state(BatchUpdate(batch_size=3, removed=[], added=[], moved=[(0, 1, MoveDirectionality.SWAP)]))
    out_a.append(7)
    out_b.append(9)
    check(lp, [(b, [5, 9]), (a, [3, 4, 7]), (None, out_plain)], seed=1)
    # A guided row swapped with a plain one: the plain row gets neither weight nor penalty.
    lp.update_state(BatchUpdate(batch_size=3, removed=[], added=[], moved=[(1, 2, MoveDirectionality.SWAP)]))
    check(lp, [(b, [5, 9]), (None, out_plain), (a, [3, 4, 7])], seed=2)


def test_removed_added_and_moved_in_one_update() -> None:
    lp = processor()
    a, b, c, d = (guidance(w, 1.5, start_id=s) for w, s in ((0.1, 0), (0.2, 1), (0.3, 2), (0.4, 3)))
    out_c: list[int] = [5]
    add(lp, 3, (0, a, [4]), (1, b, [6]), (2, c, out_c))
    check(lp, [(a, [4]), (b, [6]), (c, out_c)])
    # Rows 0 and 1 finish; a new request takes slot 0; row 2 moves down into slot 1.
    update = BatchUpdate(
        batch_size=2,
        removed=[],
        added=[(0, params(d), None, [])],
        moved=[(2, 1, MoveDirectionality.UNIDIRECTIONAL)],
    )
    lp.update_state(update)
    check(lp, [(d, []), (c, out_c)], seed=1)


@pytest.mark.parametrize("weight", [-0.01, MAX_GUIDANCE + 0.01, math.nan, math.inf, -math.inf])
def test_a_bad_weight_is_refused(weight: float) -> None:
    with pytest.raises(ValueError, match=rf"guidance weight must lie in \[0, {MAX_GUIDANCE}\]"):
        GuidanceProcessor.validate_params(params(guidance(weight=weight)))


@pytest.mark.parametrize("penalty", [0.0, -1.2, math.nan, MAX_REPETITION_PENALTY + 0.01])
def test_a_bad_repetition_penalty_is_refused(penalty: float) -> None:
    with pytest.raises(ValueError, match="repetition_penalty must lie in"):
        GuidanceProcessor.validate_params(params(guidance(penalty=penalty)))


@pytest.mark.parametrize(
    "g", [guidance(0.0, 1e-3), guidance(MAX_GUIDANCE, MAX_REPETITION_PENALTY), guidance(0.5, 1.0), None]
)
def test_good_params_are_accepted(g: Guidance | None) -> None:
    GuidanceProcessor.validate_params(params(g))


def test_guidance_round_trips_through_sampling_params() -> None:
    g = guidance(1.25, 1.2, 6561)
    assert Guidance.from_params(params(g)) == g
    assert Guidance.from_params(params(None)) is None
    assert not processor().is_argmax_invariant()
