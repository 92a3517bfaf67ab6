"""Checks of the plain PyTorch T3 reference (tests/generator/t3/reference.py) at TINY sizes."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

from tests.services.generator.t3.reference import (
    ReferenceT3,
    RefVoice,
    apply_repetition_penalty,
    expected_shapes,
    llama3_inv_freq,
    random_t3_state,
)
from voxserve.generator.t3.config import FULL, TINY, T3Config
from voxserve.random_packs.t3_checkpoint import write_random_t3

if TYPE_CHECKING:
    from transformers import LlamaConfig

SEED = 1234
KEYS_TSV = Path("/work/shared/specs/t3-keys.tsv")
TEXT = [TINY.text_start, 40, 2, 17, 311, 2, 98, 7, TINY.text_stop]
FED = [17, 4000, 17, 6560, 3, 250]
# Grouped-query attention variant: TINY itself has kv_heads == heads.
GQA = dataclasses.replace(TINY, heads=4, kv_heads=2, head_dim=16)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return random_t3_state(TINY, SEED)


@pytest.fixture(scope="module")
def ref(state: dict[str, torch.Tensor]) -> ReferenceT3:
    return ReferenceT3(state, TINY)


@pytest.fixture(scope="module")
def ref64(state: dict[str, torch.Tensor]) -> ReferenceT3:
    return ReferenceT3(state, TINY, dtype=torch.float64)


@pytest.fixture(scope="module")
def voice() -> RefVoice:
    gen = torch.Generator().manual_seed(SEED + 1)
    speaker = torch.randn(TINY.speaker_dim, generator=gen)
    prompt = torch.randint(0, TINY.speech_start, (12,), generator=gen).tolist()
    return RefVoice(speaker, prompt, 0.5)


def test_shapes_scale_the_upstream_key_list() -> None:
    if not KEYS_TSV.is_file():
        pytest.skip(f"{KEYS_TSV} not present")
    listed = {}
    for line in KEYS_TSV.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split("\t")
        listed[name] = tuple(int(n) for n in shape.strip("()").split(",") if n.strip())
    assert expected_shapes(FULL) == listed


def test_state_is_strict(state: dict[str, torch.Tensor]) -> None:
    with pytest.raises(ValueError, match="missing"):
        ReferenceT3({k: v for k, v in state.items() if k != "speech_head.weight"}, TINY)
    with pytest.raises(ValueError, match="expected"):
        ReferenceT3({**state, "tfmr.norm.weight": torch.ones(TINY.hidden + 1)}, TINY)


def test_checkpoint_module_agrees(tmp_path: Path) -> None:
    checkpoint = pytest.importorskip("voxserve.generator.t3.checkpoint")
    path = tmp_path / "t3_cfg.safetensors"
    write_random_t3(path, TINY, SEED)
    loaded = checkpoint.read_t3_state(path, TINY)
    assert {k: tuple(v.shape) for k, v in loaded.items()} == expected_shapes(TINY)
    ReferenceT3(loaded, TINY)


def test_llama3_inv_freq_is_hf_formula() -> None:
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    hf_inv_freq, scaling = ROPE_INIT_FUNCTIONS["llama3"](_hf_config(TINY))
    assert scaling == 1.0
    assert torch.equal(llama3_inv_freq(TINY), hf_inv_freq)
    c = TINY
    plain = 1.0 / c.rope_theta ** (torch.arange(0, c.head_dim, 2).double() / c.head_dim)
    ratio = plain / llama3_inv_freq(c).double()
    wavelen = 2 * math.pi / plain
    kept = wavelen < c.rope_original_max_positions / c.rope_high_freq_factor
    slowed = wavelen > c.rope_original_max_positions / c.rope_low_freq_factor
    medium = ~kept & ~slowed
    # The config's frequencies must cover all three llama3 bands for the tests to exercise them.
    assert kept.any() and medium.any() and slowed.any()
    assert torch.allclose(ratio[kept], torch.ones_like(ratio[kept]))
    assert torch.allclose(ratio[slowed], torch.full_like(ratio[slowed], c.rope_factor))
    assert ((ratio[medium] > 1.01) & (ratio[medium] < c.rope_factor - 0.01)).all()


def _hf_config(c: T3Config) -> LlamaConfig:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=c.unused_embed_rows,
        hidden_size=c.hidden,
        intermediate_size=c.intermediate,
        num_hidden_layers=c.layers,
        num_attention_heads=c.heads,
        num_key_value_heads=c.kv_heads,
        head_dim=c.head_dim,
        rms_norm_eps=c.rms_eps,
        max_position_embeddings=131072,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": c.rope_theta,
            "factor": c.rope_factor,
            "low_freq_factor": c.rope_low_freq_factor,
            "high_freq_factor": c.rope_high_freq_factor,
            "original_max_position_embeddings": c.rope_original_max_positions,
        },
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )


@pytest.mark.parametrize("config", [TINY, GQA], ids=["tiny", "gqa"])
def test_backbone_matches_transformers_llama(config: T3Config, voice: RefVoice) -> None:
    from transformers import LlamaModel

    state = random_t3_state(config, SEED)
    ref = ReferenceT3(state, config)
    model = LlamaModel(_hf_config(config)).eval()
    tfmr = {k.removeprefix("tfmr."): v for k, v in state.items() if k.startswith("tfmr.")}
    model.load_state_dict(tfmr, strict=True)
    embeds = ref.sequence_embeds(TEXT, voice, FED)[:1]  # the cond branch
    with torch.no_grad():
        expected = model(inputs_embeds=embeds, use_cache=False).last_hidden_state
    got = ref.backbone(embeds)
    assert got.shape == (1, config.cond_rows + len(TEXT) + 2 + len(FED), config.hidden)
    assert (got - expected).abs().max() < 1e-5


def test_repetition_penalty_matches_hf() -> None:
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(TINY.speech_vocab, generator=gen)
    ids = [TINY.speech_start, 5, 9, 5, 0, 8193]
    expected = RepetitionPenaltyLogitsProcessor(1.3)(torch.tensor([ids]), logits[None].clone())[0]
    got = apply_repetition_penalty(logits, ids, 1.3)
    assert torch.equal(got, expected)
    assert (got != logits).sum() == len(set(ids))


def test_unconditional_branch_zeroes_only_text_embeddings(
    ref: ReferenceT3, state: dict[str, torch.Tensor], voice: RefVoice
) -> None:
    embeds = ref.sequence_embeds(TEXT, voice, FED)
    text = slice(TINY.cond_rows, TINY.cond_rows + len(TEXT))
    assert torch.equal(embeds[1, text], state["text_pos_emb.emb.weight"][: len(TEXT)])
    ids = torch.tensor(TEXT)
    assert torch.equal(embeds[0, text], state["text_emb.weight"][ids] + state["text_pos_emb.emb.weight"][:9])
    assert torch.equal(embeds[0, : TINY.cond_rows], embeds[1, : TINY.cond_rows])
    assert torch.equal(embeds[0, text.stop :], embeds[1, text.stop :])
    start = state["speech_emb.weight"][TINY.speech_start] + state["speech_pos_emb.emb.weight"][0]
    assert torch.equal(embeds[0, text.stop], start)
    assert torch.equal(embeds[0, text.stop + 1], start)
    for i, token in enumerate(FED):
        row = state["speech_emb.weight"][token] + state["speech_pos_emb.emb.weight"][i + 1]
        assert torch.equal(embeds[0, text.stop + 2 + i], row)


def test_guidance_changes_logits(ref: ReferenceT3, voice: RefVoice) -> None:
    cond, uncond = ref.raw_logits(TEXT, voice, FED)
    assert cond.shape == uncond.shape == (len(FED) + 1, TINY.speech_vocab)
    assert (cond - uncond).abs().max() > 1e-2
    plain = ref.guided_logits(TEXT, voice, FED, guidance=0.0, repetition_penalty=1.0)
    guided = ref.guided_logits(TEXT, voice, FED, guidance=0.5, repetition_penalty=1.0)
    assert torch.equal(plain, cond)
    assert (guided - plain).abs().max() > 1e-2
    assert torch.allclose(guided, 1.5 * cond - 0.5 * uncond, atol=1e-5)


def test_repetition_penalty_sees_start_and_fed_tokens(ref: ReferenceT3, voice: RefVoice) -> None:
    plain = ref.guided_logits(TEXT, voice, FED, guidance=0.5, repetition_penalty=1.0)
    penalised = ref.guided_logits(TEXT, voice, FED, guidance=0.5, repetition_penalty=1.2)
    for s in range(len(FED) + 1):
        seen = {TINY.speech_start, *FED[:s]}
        changed = set(torch.nonzero(penalised[s] != plain[s]).flatten().tolist())
        assert changed == seen
        assert (penalised[s] <= plain[s]).all()


def test_teacher_forcing_matches_single_forwards(ref64: ReferenceT3, voice: RefVoice) -> None:
    rows = ref64.guided_logits(TEXT, voice, FED, guidance=0.5, repetition_penalty=1.2)
    assert rows.shape == (len(FED) + 1, TINY.speech_vocab)
    # Row 0 from one forward over the prefill alone, processed by hand.
    hidden = ref64.backbone(ref64.prefill_embeds(TEXT, voice))
    cond, uncond = hidden[:, -1] @ ref64.w["speech_head.weight"].T
    first = apply_repetition_penalty(cond + 0.5 * (cond - uncond), [TINY.speech_start], 1.2)
    assert (rows[0] - first).abs().max() < 1e-10
    # Every row s from a forward over the prefix that ends at speech token s - 1.
    for s in range(1, len(FED) + 1):
        prefix = ref64.guided_logits(TEXT, voice, FED[:s], guidance=0.5, repetition_penalty=1.2)
        assert (rows[s] - prefix[-1]).abs().max() < 1e-10


def test_perceiver_matches_torch_multihead_attention(
    ref64: ReferenceT3, state: dict[str, torch.Tensor], voice: RefVoice
) -> None:
    p = "cond_enc.perceiver.attn."
    norm = torch.nn.LayerNorm(TINY.hidden, dtype=torch.float64)
    mha = torch.nn.MultiheadAttention(
        TINY.hidden, TINY.perceiver_heads, batch_first=True, dtype=torch.float64
    )
    with torch.no_grad():
        norm.weight.copy_(state[p + "norm.weight"])
        norm.bias.copy_(state[p + "norm.bias"])
        qkv = ("to_q", "to_k", "to_v")
        mha.in_proj_weight.copy_(torch.cat([state[f"{p}{n}.weight"] for n in qkv]))
        mha.in_proj_bias.copy_(torch.cat([state[f"{p}{n}.bias"] for n in qkv]))
        mha.out_proj.weight.copy_(state[p + "proj_out.weight"])
        mha.out_proj.bias.copy_(state[p + "proj_out.bias"])

        def block(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
            return x1 + mha(norm(x1), norm(x2), norm(x2), need_weights=False)[0]

        prompt = ref64.prompt_embedding(voice.prompt_tokens)[None]
        queries = state["cond_enc.perceiver.pre_attention_query"].double()
        first = block(queries, prompt)
        expected = block(first, first)[0]
    got = ref64.conditioning(voice.speaker_embedding, voice.prompt_tokens, voice.exaggeration)
    assert got.shape == (TINY.cond_rows, TINY.hidden)
    assert (got[1:-1] - expected).abs().max() < 1e-10
    speaker = state["cond_enc.spkr_enc.weight"].double() @ voice.speaker_embedding.double()
    assert torch.allclose(got[0], speaker + state["cond_enc.spkr_enc.bias"].double())
    assert torch.allclose(got[-1], 0.5 * state["cond_enc.emotion_adv_fc.weight"][:, 0].double())


def test_perceiver_depends_on_prompt_and_exaggeration_on_last_row(ref: ReferenceT3, voice: RefVoice) -> None:
    base = ref.conditioning(voice.speaker_embedding, voice.prompt_tokens, 0.5)
    other_prompt = list(voice.prompt_tokens)
    other_prompt[3] = (other_prompt[3] + 1) % TINY.speech_start
    moved = ref.conditioning(voice.speaker_embedding, other_prompt, 0.5)
    assert torch.equal(moved[0], base[0])
    assert torch.equal(moved[-1], base[-1])
    assert ((moved[1:-1] - base[1:-1]).abs().amax(dim=-1) > 1e-4).all()
    shorter = ref.conditioning(voice.speaker_embedding, voice.prompt_tokens[:5], 0.5)
    assert (shorter[1:-1] - base[1:-1]).abs().max() > 1e-3

    excited = ref.conditioning(voice.speaker_embedding, voice.prompt_tokens, 1.5)
    changed = (excited != base).any(dim=-1)
    assert changed.tolist() == [False] * (TINY.cond_rows - 1) + [True]


def test_empty_prompt_is_rejected(ref: ReferenceT3, voice: RefVoice) -> None:
    with pytest.raises(ValueError, match="prompt tokens"):
        ref.conditioning(voice.speaker_embedding, [], 0.5)


def test_greedy_is_deterministic_and_matches_teacher_forcing(ref64: ReferenceT3, voice: RefVoice) -> None:
    tokens, logits = ref64.greedy(TEXT, voice, steps=6, guidance=0.5, repetition_penalty=1.2)
    again, logits_again = ref64.greedy(TEXT, voice, steps=6, guidance=0.5, repetition_penalty=1.2)
    assert tokens == again
    assert torch.equal(logits, logits_again)
    assert len(tokens) == 6 and logits.shape == (6, TINY.speech_vocab)
    assert tokens == logits.argmax(dim=-1).tolist()
    forced = ref64.guided_logits(TEXT, voice, tokens[:-1], guidance=0.5, repetition_penalty=1.2)
    assert (forced - logits).abs().max() < 1e-10


def test_greedy_stop_flag(state: dict[str, torch.Tensor], voice: RefVoice) -> None:
    # Point the stop token's head row at the first step's cond hidden state so it wins step 0.
    probe = ReferenceT3(state, TINY)
    hidden = probe.backbone(probe.prefill_embeds(TEXT, voice))[0, -1]
    head = torch.zeros_like(state["speech_head.weight"])
    head[TINY.speech_stop] = 10 * hidden / hidden.norm()
    ref = ReferenceT3({**state, "speech_head.weight": head}, TINY)
    tokens, logits = ref.greedy(TEXT, voice, steps=4, guidance=0.0, repetition_penalty=1.2, stop=True)
    assert tokens == [TINY.speech_stop] and logits.shape == (1, TINY.speech_vocab)
    tokens, logits = ref.greedy(TEXT, voice, steps=4, guidance=0.0, repetition_penalty=1.2)
    assert len(tokens) == 4 and tokens[0] == TINY.speech_stop and logits.shape == (4, TINY.speech_vocab)


def test_float32_tracks_float64(ref: ReferenceT3, ref64: ReferenceT3, voice: RefVoice) -> None:
    got = ref.guided_logits(TEXT, voice, FED)
    truth = ref64.guided_logits(TEXT, voice, FED)
    assert got.dtype == torch.float32 and truth.dtype == torch.float64
    assert (got.double() - truth).abs().max() < 1e-4
    assert math.isfinite(float(truth.abs().max()))
