"""The vLLM T3 model against the plain PyTorch reference (`reference.py`), on the tiny config with
random weights: two voices x two guidance weights, batched in one engine, 50 greedy steps each.

The engine runs with `logprobs_mode="processed_logits"`, so the logits it reports for a step are
the ones it chose from: after guidance and the repetition penalty (greedy decoding applies no
temperature). Each step reports the chosen id and 126 ids spread over the speech vocabulary."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.services.generator.t3.reference import ReferenceT3, RefVoice
from voxserve.generator.t3.checkpoint import read_t3_state
from voxserve.generator.t3.conditioning import T3Conditioner
from voxserve.generator.t3.config import TINY
from voxserve.generator.t3.guidance import Guidance
from voxserve.generator.t3.model_dir import t3_engine_options, write_model_dir
from voxserve.generator.t3.voice import T3Voice
from voxserve.random_packs.t3_checkpoint import write_random_t3

STEPS = 50
TOLERANCE = 1e-4
TEXT_IDS = [255, 41, 2, 57, 63, 2, 120, 7, 300, 2, 9, 0]
WEIGHTS = (0.5, 1.0)
# The chosen id comes first in every step's report; these are the rest (vLLM allows 128 in all).
PROBE_IDS = [*range(0, TINY.speech_vocab, 66), TINY.speech_start, TINY.speech_stop][:126]


def _voice(seed: int, exaggeration: float) -> T3Voice:
    g = torch.Generator().manual_seed(seed)
    return T3Voice(
        speaker_embedding=torch.randn(TINY.speaker_dim, generator=g),
        prompt_tokens=torch.randint(0, 6561, (40 + seed,), generator=g),
        exaggeration=exaggeration,
    )


VOICES = (_voice(1, 0.5), _voice(2, 0.9))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("t3") / "t3_cfg.safetensors"
    write_random_t3(path, TINY, seed=7)
    return path


@pytest.fixture(scope="module")
def reference(checkpoint: Path) -> ReferenceT3:
    return ReferenceT3(read_t3_state(checkpoint, TINY), TINY)


@pytest.fixture(scope="module")
def conditioner(checkpoint: Path) -> T3Conditioner:
    return T3Conditioner.load(checkpoint, TINY)


@pytest.fixture(scope="module")
def engine(checkpoint: Path) -> Any:
    # A small CPU KV cache (vLLM would otherwise take most of the machine's memory and zero it).
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    model_dir = write_model_dir(checkpoint.parent / "model", checkpoint, TINY)
    with warnings.catch_warnings():
        # vLLM's offline entry point imports torch modules that warn of their own deprecation.
        warnings.simplefilter("ignore", DeprecationWarning)
        from vllm import LLM

        llm = LLM(
            model=str(model_dir),
            dtype="float32",
            max_model_len=512,
            max_num_seqs=8,
            enforce_eager=True,
            logprobs_mode="processed_logits",
            seed=0,
            **t3_engine_options(),
        )
    yield llm
    client = llm.llm_engine.engine_core
    client.shutdown()
    client.ctx.destroy(linger=0)  # the offline client leaves its ZeroMQ context to the collector


def _params(weight: float, steps: int = STEPS) -> Any:
    from vllm import SamplingParams

    return SamplingParams(
        temperature=0.0,
        max_tokens=steps,
        ignore_eos=True,
        logprob_token_ids=PROBE_IDS,
        extra_args=Guidance(weight, 1.2, TINY.speech_start).as_args(),
    )


def _ref_voice(voice: T3Voice) -> RefVoice:
    return RefVoice(voice.speaker_embedding, voice.prompt_tokens.tolist(), voice.exaggeration)


def _reported(step: dict[int, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    ids = sorted(step)
    return torch.tensor(ids), torch.tensor([step[i].logprob for i in ids])


CASES = [(v, w) for v in range(len(VOICES)) for w in WEIGHTS]


@pytest.fixture(scope="module")
def batched(engine: Any, conditioner: T3Conditioner) -> list[Any]:
    """All four cases in one call, so they share engine steps."""
    prompts = [
        {"prompt_embeds": conditioner.prompt(VOICES[v], TEXT_IDS, VOICES[v].exaggeration)} for v, _ in CASES
    ]
    outputs = engine.generate(prompts, [_params(w) for _, w in CASES], use_tqdm=False)
    return [o.outputs[0] for o in outputs]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_logits_after_guidance_match_the_reference(
    case: int, batched: list[Any], reference: ReferenceT3
) -> None:
    v, weight = CASES[case]
    completion = batched[case]
    tokens = list(completion.token_ids)
    assert len(tokens) == STEPS
    expected = reference.guided_logits(TEXT_IDS, _ref_voice(VOICES[v]), tokens, guidance=weight)
    worst = 0.0
    for step, report in enumerate(completion.logprobs):
        ids, values = _reported(report)
        assert len(ids) >= len(PROBE_IDS)
        worst = max(worst, float((values - expected[step, ids]).abs().max()))
    assert worst < TOLERANCE, f"largest difference {worst:.2e} over {STEPS} steps"


@pytest.mark.parametrize("case", range(len(CASES)))
def test_greedy_tokens_equal_the_reference(case: int, batched: list[Any], reference: ReferenceT3) -> None:
    v, weight = CASES[case]
    tokens, _ = reference.greedy(TEXT_IDS, _ref_voice(VOICES[v]), STEPS, guidance=weight)
    assert list(batched[case].token_ids) == tokens


def test_guidance_changes_the_logits(batched: list[Any]) -> None:
    """Same voice, two weights: the first step's logits differ, so the unconditional branch counts."""
    for v in range(len(VOICES)):
        low, high = (batched[CASES.index((v, w))].logprobs[0] for w in WEIGHTS)
        shared = [i for i in PROBE_IDS if i in low and i in high]
        assert max(abs(low[i].logprob - high[i].logprob) for i in shared) > 1e-2


def test_voices_change_the_logits(batched: list[Any]) -> None:
    a, b = batched[CASES.index((0, WEIGHTS[0]))], batched[CASES.index((1, WEIGHTS[0]))]
    shared = [i for i in PROBE_IDS if i in a.logprobs[0] and i in b.logprobs[0]]
    assert max(abs(a.logprobs[0][i].logprob - b.logprobs[0][i].logprob) for i in shared) > 1e-2


def test_a_request_joining_mid_flight_decodes_as_it_would_alone(
    engine: Any, conditioner: T3Conditioner, batched: list[Any]
) -> None:
    """Continuous batching: the second request enters while the first is decoding, and both give
    the tokens they gave when batched from the start."""
    core = engine.llm_engine
    first, second = CASES[0], CASES[3]
    core.add_request(
        "first",
        {"prompt_embeds": conditioner.prompt(VOICES[first[0]], TEXT_IDS, VOICES[first[0]].exaggeration)},
        _params(first[1]),
    )
    tokens: dict[str, list[int]] = {"first": [], "second": []}
    steps = 0
    while core.has_unfinished_requests():
        for output in core.step():
            tokens[output.request_id] = list(output.outputs[0].token_ids)
        steps += 1
        if steps == 10:
            assert 0 < len(tokens["first"]) < STEPS
            core.add_request(
                "second",
                {
                    "prompt_embeds": conditioner.prompt(
                        VOICES[second[0]], TEXT_IDS, VOICES[second[0]].exaggeration
                    )
                },
                _params(second[1]),
            )
    assert tokens["first"] == list(batched[0].token_ids)
    assert tokens["second"] == list(batched[3].token_ids)
