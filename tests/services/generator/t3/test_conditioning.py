"""The engine's prompt rows against the reference's conditioned branch."""

from __future__ import annotations

import pytest
import torch

from tests.services.generator.t3.reference import ReferenceT3, RefVoice, random_t3_state
from voxserve.generator.t3.conditioning import PREFIXES, T3Conditioner
from voxserve.generator.t3.config import TINY
from voxserve.generator.t3.voice import T3Voice

TEXT_IDS = [255, 12, 2, 40, 0]


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return random_t3_state(TINY, seed=3)


def _voice(seed: int, exaggeration: float) -> T3Voice:
    g = torch.Generator().manual_seed(seed)
    return T3Voice(
        torch.randn(TINY.speaker_dim, generator=g), torch.randint(0, 6561, (30,), generator=g), exaggeration
    )


def test_prompt_rows_equal_the_references_conditioned_branch(state: dict[str, torch.Tensor]) -> None:
    conditioner = T3Conditioner({k: v for k, v in state.items() if k.startswith(PREFIXES)}, TINY)
    reference = ReferenceT3(state, TINY)
    for seed, exaggeration in ((1, 0.5), (2, 1.3)):
        voice = _voice(seed, exaggeration)
        rows = conditioner.prompt(voice, TEXT_IDS, exaggeration)
        ref_voice = RefVoice(voice.speaker_embedding, voice.prompt_tokens.tolist(), exaggeration)
        expected = reference.prefill_embeds(TEXT_IDS, ref_voice)[0]
        assert rows.shape == (TINY.cond_rows + len(TEXT_IDS) + 2, TINY.hidden)
        assert torch.allclose(rows, expected, atol=1e-5)


def test_exaggeration_changes_only_its_row(state: dict[str, torch.Tensor]) -> None:
    conditioner = T3Conditioner(state, TINY)
    voice = _voice(1, 0.5)
    calm, excited = conditioner.prompt(voice, TEXT_IDS, 0.5), conditioner.prompt(voice, TEXT_IDS, 1.5)
    changed = (calm != excited).any(dim=1).nonzero().flatten().tolist()
    assert changed == [TINY.cond_rows - 1]


def test_the_speech_start_row_is_fed_twice(state: dict[str, torch.Tensor]) -> None:
    rows = T3Conditioner(state, TINY).prompt(_voice(1, 0.5), TEXT_IDS, 0.5)
    start = state["speech_emb.weight"][TINY.speech_start] + state["speech_pos_emb.emb.weight"][0]
    assert torch.equal(rows[-1], rows[-2]) and torch.allclose(rows[-1], start)
