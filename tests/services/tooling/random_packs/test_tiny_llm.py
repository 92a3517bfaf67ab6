import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from transformers import AutoTokenizer, PreTrainedTokenizerBase, Qwen2ForCausalLM

from voxserve.generator.prompts import SparkPromptBuilder
from voxserve.random_packs.tiny_llm import (
    QWEN_SPECIAL_TOKENS,
    SPARK_CONTROL_TOKENS,
    bicodec_tokens,
    corpus_lines,
    write_tiny_llm,
)

PACK_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
)
HINDI = "नमस्ते, आप कैसे हैं? हिन्दी भारत की एक प्रमुख भाषा है। क्षत्रिय ज़्यादा ॐ"
GLOBALS = [0, 4095, *range(7, 7 + 30)]
# Capturing, so that split() keeps the special tokens between the text pieces.
SPECIAL_TOKEN_SPLIT = re.compile(r"(<\|[^<>|]+\|>)")


@pytest.fixture(scope="module")
def tokenizer(tiny_llm_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_llm_dir)


@pytest.fixture(scope="module")
def config(tiny_llm_dir: Path) -> dict:
    return json.loads((tiny_llm_dir / "config.json").read_text())


def test_the_corpus_is_read_from_the_package_data_line_for_line() -> None:
    """Every pack's tokenizer.json follows from these lines: a packaging mistake (the file left out
    of the wheel, another encoding, a line lost or changed) must fail here, not in a pack."""
    lines = corpus_lines()
    assert len(lines) == 122
    assert lines[0] == "The quick brown fox jumps over the lazy dog while the farmer watches from the gate."
    assert lines[89] == "Jack and Jill went up the hill to fetch a pail of water."
    assert lines[-1] == "ओह! यह तो बहुत मज़ेदार बात है।"
    assert [line.isascii() for line in lines] == [True] * 98 + [False] * 24  # English, then Hindi
    assert all(line and line == line.strip() for line in lines)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    assert digest == "42e9278a2d7c5a9ccf48c6778dc892e317439d8f60d407d85fa4aa386c6b5782"


def _files(llm_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(llm_dir.iterdir())}


def test_writes_the_spark_llm_layout(tiny_llm_dir: Path) -> None:
    assert sorted(_files(tiny_llm_dir)) == sorted(PACK_FILES)


def test_same_seed_gives_identical_bytes(tmp_path: Path, tiny_llm_dir: Path) -> None:
    write_tiny_llm(tmp_path / "again", seed=1234)
    assert _files(tmp_path / "again") == _files(tiny_llm_dir)


def test_another_seed_changes_only_the_weights(tmp_path: Path, tiny_llm_dir: Path) -> None:
    write_tiny_llm(tmp_path / "other", seed=5678)
    ours, theirs = _files(tiny_llm_dir), _files(tmp_path / "other")
    assert ours["model.safetensors"] != theirs["model.safetensors"]
    assert {name for name in PACK_FILES if ours[name] != theirs[name]} == {"model.safetensors"}


def test_transformers_loads_every_weight(tiny_llm_dir: Path) -> None:
    model, info = Qwen2ForCausalLM.from_pretrained(tiny_llm_dir, output_loading_info=True)
    assert info["missing_keys"] == set()
    assert info["unexpected_keys"] == set()
    assert info["mismatched_keys"] == set()
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


def test_weights_use_the_hugging_face_qwen2_names(tiny_llm_dir: Path, config: dict) -> None:
    with safe_open(str(tiny_llm_dir / "model.safetensors"), framework="np") as f:
        assert f.metadata() == {"format": "pt"}
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    layer_names = {
        f"model.layers.{n}.{suffix}"
        for n in range(config["num_hidden_layers"])
        for suffix in (
            "self_attn.q_proj.weight",
            "self_attn.q_proj.bias",
            "self_attn.k_proj.weight",
            "self_attn.k_proj.bias",
            "self_attn.v_proj.weight",
            "self_attn.v_proj.bias",
            "self_attn.o_proj.weight",
            "mlp.gate_proj.weight",
            "mlp.up_proj.weight",
            "mlp.down_proj.weight",
            "input_layernorm.weight",
            "post_attention_layernorm.weight",
        )
    }
    assert set(tensors) == {"model.embed_tokens.weight", "model.norm.weight", *layer_names}
    assert all(t.dtype == np.float32 for t in tensors.values())
    assert tensors["model.embed_tokens.weight"].shape == (config["vocab_size"], config["hidden_size"])
    assert tensors["model.layers.0.self_attn.k_proj.weight"].shape == (32, 64)
    np.testing.assert_array_equal(tensors["model.norm.weight"], 1.0)
    assert 0.015 < tensors["model.embed_tokens.weight"].std() < 0.025


def test_config_is_a_small_qwen2(config: dict, tokenizer: PreTrainedTokenizerBase) -> None:
    assert config["architectures"] == ["Qwen2ForCausalLM"]
    assert config["model_type"] == "qwen2"
    # vLLM's CPU attention accepts only some head sizes; 32 is the smallest.
    assert config["hidden_size"] // config["num_attention_heads"] == 32
    assert config["num_attention_heads"] % config["num_key_value_heads"] == 0
    assert config["tie_word_embeddings"] is True
    assert config["vocab_size"] % 64 == 0
    assert len(tokenizer) <= config["vocab_size"] < len(tokenizer) + 64
    assert config["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert config["bos_token_id"] == tokenizer.convert_tokens_to_ids("<|endoftext|>")


def test_tokenizer_names_the_qwen2_special_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"


def test_added_tokens_follow_the_real_order(tokenizer: PreTrainedTokenizerBase) -> None:
    added = [*QWEN_SPECIAL_TOKENS, *bicodec_tokens(), *SPARK_CONTROL_TOKENS]
    ids = tokenizer.convert_tokens_to_ids(added)
    first = ids[0]
    assert ids == list(range(first, first + len(added)))
    assert first + len(added) == len(tokenizer)


def test_every_added_token_encodes_as_one_id(tokenizer: PreTrainedTokenizerBase) -> None:
    added = [*QWEN_SPECIAL_TOKENS, *bicodec_tokens(), *SPARK_CONTROL_TOKENS]
    encoded = tokenizer(added, add_special_tokens=False)["input_ids"]
    assert encoded == [[i] for i in tokenizer.convert_tokens_to_ids(added)]


@pytest.mark.parametrize(
    "prompt",
    [
        SparkPromptBuilder(num_global=4096).fixed_voice("Hello there, world!", GLOBALS),
        SparkPromptBuilder(num_global=4096).controllable(HINDI, "male", 0, 4),
        SparkPromptBuilder(num_global=4096).controllable_with_globals("It's 4:15.", "female", 2, 3, GLOBALS),
        "<|task_tts|><|start_content|>Hi<|end_content|><|start_global_token|><|bicodec_global_1|>"
        "<|end_global_token|><|start_semantic_token|><|bicodec_semantic_8191|><|bicodec_semantic_0|>"
        "<|end_semantic_token|><|im_end|>",
    ],
)
def test_prompt_special_tokens_are_single_ids(tokenizer: PreTrainedTokenizerBase, prompt: str) -> None:
    expected: list[int] = []
    for piece in SPECIAL_TOKEN_SPLIT.split(prompt):
        if SPECIAL_TOKEN_SPLIT.fullmatch(piece):
            expected.append(tokenizer.convert_tokens_to_ids(piece))
        elif piece:
            expected += tokenizer(piece, add_special_tokens=False)["input_ids"]
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert ids == expected
    assert tokenizer.decode(ids) == prompt


def test_hindi_round_trips(tokenizer: PreTrainedTokenizerBase) -> None:
    ids = tokenizer(HINDI, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == HINDI
    assert len(ids) < len(HINDI.encode())


def test_bicodec_tokens_survive_skipping_special_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    # Upstream decodes generations with skip_special_tokens=True and then parses the BiCodec tokens
    # out of the text, so they are ordinary added tokens; only Qwen2's own tokens are special.
    text = "<|start_semantic_token|><|bicodec_semantic_5|><|bicodec_global_9|><|im_end|>"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text.removesuffix("<|im_end|>")
