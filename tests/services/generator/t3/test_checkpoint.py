"""`t3_cfg.safetensors`: the published names and shapes, random weights that round-trip through
the strict reader, and the reader's refusals naming what is wrong."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from voxserve.generator.t3.checkpoint import check_t3_tensors, expected_shapes, read_t3_state
from voxserve.generator.t3.config import FULL, TINY, T3Config
from voxserve.random_packs.t3_checkpoint import write_random_t3

KEYS_TABLE = Path(__file__).resolve().parents[3] / "data" / "t3-keys.tsv"
SHARED_TABLE = Path("/work/shared/specs/t3-keys.tsv")


def _published(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, shape = line.split("\t")
            rows.append((name, tuple(ast.literal_eval(shape))))
    return rows


def test_full_size_names_order_and_shapes_equal_the_published_table() -> None:
    assert list(expected_shapes(FULL).items()) == _published(KEYS_TABLE)
    assert len(expected_shapes(FULL)) == 292


def test_the_copied_table_matches_the_shared_specs_where_they_are_present() -> None:
    if not SHARED_TABLE.is_file():
        pytest.skip("the shared specs are not beside this checkout")
    assert KEYS_TABLE.read_bytes() == SHARED_TABLE.read_bytes()


def test_grouped_query_attention_shapes_follow_the_kv_heads() -> None:
    shapes = expected_shapes(T3Config(layers=1, hidden=64, heads=4, kv_heads=2, head_dim=16))
    assert shapes["tfmr.layers.0.self_attn.q_proj.weight"] == (64, 64)
    assert shapes["tfmr.layers.0.self_attn.k_proj.weight"] == (32, 64)
    assert shapes["tfmr.layers.0.self_attn.o_proj.weight"] == (64, 64)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("t3") / "t3_cfg.safetensors"
    write_random_t3(path, TINY, seed=3)
    return path


def test_tiny_checkpoint_round_trips_through_the_strict_reader(tiny_checkpoint: Path) -> None:
    state = read_t3_state(tiny_checkpoint, TINY)
    assert list(state) == list(expected_shapes(TINY))
    assert {name: tuple(t.shape) for name, t in state.items()} == expected_shapes(TINY)
    assert all(t.dtype == torch.float32 for t in state.values())
    # The streamed file is an ordinary safetensors file.
    plain = load_file(str(tiny_checkpoint))
    assert all(torch.equal(plain[name], state[name]) for name in state)


def test_random_weights_are_deterministic_per_seed(tiny_checkpoint: Path, tmp_path: Path) -> None:
    write_random_t3(tmp_path / "same.safetensors", TINY, seed=3)
    write_random_t3(tmp_path / "other.safetensors", TINY, seed=4)
    assert (tmp_path / "same.safetensors").read_bytes() == tiny_checkpoint.read_bytes()
    assert (tmp_path / "other.safetensors").read_bytes() != tiny_checkpoint.read_bytes()


def test_bfloat16_weights_are_the_float32_ones_rounded(tiny_checkpoint: Path, tmp_path: Path) -> None:
    write_random_t3(tmp_path / "bf16.safetensors", TINY, seed=3, dtype=torch.bfloat16)
    half, full = read_t3_state(tmp_path / "bf16.safetensors", TINY), read_t3_state(tiny_checkpoint, TINY)
    assert half["speech_head.weight"].dtype == torch.bfloat16
    assert torch.equal(half["speech_head.weight"], full["speech_head.weight"].to(torch.bfloat16))


def test_random_scales_keep_the_speech_logits_spread(tiny_checkpoint: Path) -> None:
    state = read_t3_state(tiny_checkpoint, TINY)
    # A final-norm output has unit RMS; the head should spread its 8194 logits by a few units.
    hidden = torch.randn(256, TINY.hidden, generator=torch.Generator().manual_seed(0))
    logits = hidden @ state["speech_head.weight"].T
    assert 2.0 < float(logits.std()) < 4.0
    top2 = logits.topk(2, dim=-1).values
    assert float((top2[:, 0] - top2[:, 1]).min()) > 1e-4  # greedy picks are not ties
    norm = state["tfmr.layers.0.input_layernorm.weight"]
    assert 0.5 < float(norm.min()) and float(norm.max()) < 1.5
    assert float(state["speech_pos_emb.emb.weight"].std()) < float(state["speech_emb.weight"].std())


def _rewrite(src: Path, dst: Path, edit: dict[str, torch.Tensor | None]) -> Path:
    tensors = load_file(str(src))
    for name, tensor in edit.items():
        if tensor is None:
            del tensors[name]
        else:
            tensors[name] = tensor
    save_file(tensors, str(dst))
    return dst


def test_a_missing_tensor_is_named(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = _rewrite(tiny_checkpoint, tmp_path / "m.safetensors", {"speech_head.weight": None})
    with pytest.raises(ValueError, match=r"m\.safetensors .*missing speech_head\.weight"):
        read_t3_state(path, TINY)


def test_an_unexpected_tensor_is_named(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = _rewrite(tiny_checkpoint, tmp_path / "u.safetensors", {"lm_head.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match=r"unexpected lm_head\.weight"):
        read_t3_state(path, TINY)


def test_a_misshapen_tensor_is_named_with_both_shapes(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = _rewrite(tiny_checkpoint, tmp_path / "s.safetensors", {"text_emb.weight": torch.zeros(2454, 64)})
    with pytest.raises(ValueError, match=r"misshapen text_emb\.weight \(2454, 64\) \(expected \(704, 64\)\)"):
        read_t3_state(path, TINY)


def test_a_full_checkpoint_is_refused_by_the_tiny_config_naming_a_few(tiny_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match=r"the file does not match.*misshapen .* and \d+ more") as info:
        check_t3_tensors(expected_shapes(FULL), TINY, "the file")
    assert "misshapen tfmr.embed_tokens.weight (8, 1024) (expected (8, 64))" in str(info.value)


def test_a_file_that_is_not_safetensors_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"junk\.safetensors: not a readable safetensors file"):
        read_t3_state(path, TINY)
