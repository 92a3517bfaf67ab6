import re
from pathlib import Path

import numpy as np
import pytest
from tokenizers import AddedToken, Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from voxserve.families.family import TokenKind
from voxserve.generator.token_table import NO_INDEX, MissingTokensError, TokenTable
from voxserve.random_packs.tiny_llm import write_tiny_llm

MARKERS = {
    "<|start_global_token|>": TokenKind.START_GLOBAL,
    "<|end_global_token|>": TokenKind.END_GLOBAL,
    "<|start_semantic_token|>": TokenKind.START_SEMANTIC,
    "<|end_semantic_token|>": TokenKind.END_SEMANTIC,
    "<|im_end|>": TokenKind.EOS,
}
BICODEC = re.compile(r"<\|bicodec_(global|semantic)_(\d+)\|>")


def expected_kind_and_index(token: str) -> tuple[TokenKind, int]:
    """What the table must say about a token, read from its name alone."""
    if token in MARKERS:
        return MARKERS[token], NO_INDEX
    if match := BICODEC.fullmatch(token):
        kind = TokenKind.GLOBAL if match.group(1) == "global" else TokenKind.SEMANTIC
        return kind, int(match.group(2))
    return TokenKind.OTHER, NO_INDEX


def assert_table_matches_names(table: TokenTable, vocab: dict[str, int]) -> None:
    by_id = {token_id: token for token, token_id in vocab.items()}
    ids = np.arange(table.size)
    kinds, indices = table.classify(ids)
    for token_id in ids.tolist():
        kind, index = expected_kind_and_index(by_id.get(token_id, ""))
        assert (kinds[token_id], indices[token_id]) == (kind, index), by_id.get(token_id)
        assert (table.kind_of(token_id), table.index_of(token_id)) == (kind, index)


def shifted_tokenizer(num_global: int = 16, num_semantic: int = 24) -> Tokenizer:
    """A tokenizer unlike Spark's in every id: ordinary tokens first, BiCodec runs out of order."""
    words = ["[UNK]", "hello", "world", "voice", "<|bicodec_global|>", "bicodec_semantic_3"]
    tokenizer = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.add_tokens([f"<extra_{n}>" for n in range(37)])
    semantics = [f"<|bicodec_semantic_{n}|>" for n in reversed(range(num_semantic))]
    globals_ = [f"<|bicodec_global_{n}|>" for n in range(num_global)]
    interleaved = [t for pair in zip(semantics, globals_, strict=False) for t in pair]
    interleaved += semantics[len(globals_) :]
    tokenizer.add_tokens([AddedToken(t, special=False) for t in interleaved[:9]])
    tokenizer.add_special_tokens(["<|end_semantic_token|>", "<|im_end|>", "<|start_global_token|>"])
    tokenizer.add_tokens(interleaved[9:])
    tokenizer.add_tokens(["<|end_global_token|>", "<|start_semantic_token|>"])
    return tokenizer


@pytest.fixture(scope="module")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> PreTrainedTokenizerBase:
    llm_dir: Path = tmp_path_factory.mktemp("token_table") / "LLM"
    write_tiny_llm(llm_dir, seed=0)
    return AutoTokenizer.from_pretrained(llm_dir)


@pytest.fixture(scope="module")
def table(tiny_tokenizer: PreTrainedTokenizerBase) -> TokenTable:
    return TokenTable.from_tokenizer(tiny_tokenizer)


def test_counts_come_from_the_tokenizer(table: TokenTable) -> None:
    assert table.num_global == 4096
    assert table.num_semantic == 8192


def test_every_id_of_the_tiny_tokenizer_is_classified(
    table: TokenTable, tiny_tokenizer: PreTrainedTokenizerBase
) -> None:
    assert table.size == len(tiny_tokenizer)
    assert_table_matches_names(table, tiny_tokenizer.get_vocab())


def test_id_lists_are_in_index_order(table: TokenTable, tiny_tokenizer: PreTrainedTokenizerBase) -> None:
    tokens = [f"<|bicodec_global_{n}|>" for n in range(table.num_global)]
    assert table.global_ids.tolist() == tiny_tokenizer.convert_tokens_to_ids(tokens)
    tokens = [f"<|bicodec_semantic_{n}|>" for n in range(table.num_semantic)]
    assert table.semantic_ids.tolist() == tiny_tokenizer.convert_tokens_to_ids(tokens)
    assert table.global_token_id(17) == tiny_tokenizer.convert_tokens_to_ids("<|bicodec_global_17|>")
    assert table.semantic_token_id(8191) == tiny_tokenizer.convert_tokens_to_ids("<|bicodec_semantic_8191|>")


def test_marker_ids(table: TokenTable, tiny_tokenizer: PreTrainedTokenizerBase) -> None:
    assert table.eos_id == tiny_tokenizer.convert_tokens_to_ids("<|im_end|>") == tiny_tokenizer.eos_token_id
    assert table.start_global_id == tiny_tokenizer.convert_tokens_to_ids("<|start_global_token|>")
    assert table.end_global_id == tiny_tokenizer.convert_tokens_to_ids("<|end_global_token|>")
    assert table.start_semantic_id == tiny_tokenizer.convert_tokens_to_ids("<|start_semantic_token|>")
    assert table.end_semantic_id == tiny_tokenizer.convert_tokens_to_ids("<|end_semantic_token|>")
    assert {kind: table.kind_of(token_id) for kind, token_id in table.marker_ids.items()} == {
        kind: kind for kind in table.marker_ids
    }


def test_text_ids_are_other(table: TokenTable, tiny_tokenizer: PreTrainedTokenizerBase) -> None:
    ids = tiny_tokenizer("Hello world, नमस्ते! <|task_tts|>", add_special_tokens=False)["input_ids"]
    kinds, indices = table.classify(ids)
    assert kinds.tolist() == [TokenKind.OTHER] * len(ids)
    assert indices.tolist() == [NO_INDEX] * len(ids)


def test_classify_a_generated_sequence(table: TokenTable) -> None:
    ids = [
        table.start_global_id,
        table.global_token_id(4095),
        table.global_token_id(0),
        table.end_global_id,
        table.start_semantic_id,
        table.semantic_token_id(5),
        table.end_semantic_id,
        table.eos_id,
    ]
    kinds, indices = table.classify(np.array(ids))
    assert kinds.dtype == np.uint8
    assert indices.dtype == np.int32
    assert [TokenKind(k) for k in kinds] == [
        TokenKind.START_GLOBAL,
        TokenKind.GLOBAL,
        TokenKind.GLOBAL,
        TokenKind.END_GLOBAL,
        TokenKind.START_SEMANTIC,
        TokenKind.SEMANTIC,
        TokenKind.END_SEMANTIC,
        TokenKind.EOS,
    ]
    assert indices.tolist() == [NO_INDEX, 4095, 0, NO_INDEX, NO_INDEX, 5, NO_INDEX, NO_INDEX]


def test_ids_past_the_tokenizer_are_other(tiny_tokenizer: PreTrainedTokenizerBase) -> None:
    padded = TokenTable.from_tokenizer(tiny_tokenizer, vocab_size=len(tiny_tokenizer) + 40)
    assert padded.size == len(tiny_tokenizer) + 40
    outside = [len(tiny_tokenizer), padded.size - 1, padded.size, 10**9, -1]
    kinds, indices = padded.classify(outside)
    assert kinds.tolist() == [TokenKind.OTHER] * len(outside)
    assert indices.tolist() == [NO_INDEX] * len(outside)
    assert padded.kind_of(10**9) == TokenKind.OTHER
    assert padded.index_of(-1) == NO_INDEX
    with pytest.raises(ValueError, match="vocab_size"):
        TokenTable.from_tokenizer(tiny_tokenizer, vocab_size=len(tiny_tokenizer) - 1)


def test_raw_and_transformers_tokenizers_agree(
    table: TokenTable, tiny_tokenizer: PreTrainedTokenizerBase
) -> None:
    raw = TokenTable.from_tokenizer(tiny_tokenizer.backend_tokenizer)
    np.testing.assert_array_equal(raw.kind, table.kind)
    np.testing.assert_array_equal(raw.index, table.index)
    assert raw.marker_ids == table.marker_ids


def test_index_lookups_are_bounded(table: TokenTable) -> None:
    with pytest.raises(IndexError, match=r"0\.\.4095"):
        table.global_token_id(4096)
    with pytest.raises(IndexError, match=r"0\.\.8191"):
        table.semantic_token_id(-1)


def test_table_is_read_only(table: TokenTable) -> None:
    with pytest.raises(ValueError, match="read-only"):
        table.kind[0] = TokenKind.GLOBAL


def test_shifted_ids_and_other_counts() -> None:
    tokenizer = shifted_tokenizer(num_global=16, num_semantic=24)
    table = TokenTable.from_tokenizer(tokenizer)
    assert (table.num_global, table.num_semantic) == (16, 24)
    assert_table_matches_names(table, tokenizer.get_vocab())
    assert table.global_ids.tolist() == [tokenizer.token_to_id(f"<|bicodec_global_{n}|>") for n in range(16)]
    assert table.semantic_ids.tolist() == [
        tokenizer.token_to_id(f"<|bicodec_semantic_{n}|>") for n in range(24)
    ]
    # The look-alike ordinary words must stay text.
    assert table.kind_of(tokenizer.token_to_id("<|bicodec_global|>")) == TokenKind.OTHER
    assert table.kind_of(tokenizer.token_to_id("bicodec_semantic_3")) == TokenKind.OTHER


def test_shifted_ids_differ_from_the_tiny_pack(table: TokenTable) -> None:
    shifted = TokenTable.from_tokenizer(shifted_tokenizer())
    assert shifted.eos_id != table.eos_id
    assert shifted.global_token_id(0) != table.global_token_id(0)
    assert shifted.semantic_token_id(0) != table.semantic_token_id(0)


def test_tokenizer_without_bicodec_tokens_is_refused() -> None:
    tokenizer = Tokenizer(WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    tokenizer.add_special_tokens(["<|im_end|>"])
    with pytest.raises(MissingTokensError, match=re.escape("no <|bicodec_semantic_N|> tokens")):
        TokenTable.from_tokenizer(tokenizer)


def test_gaps_in_a_bicodec_run_are_refused() -> None:
    vocab = shifted_tokenizer().get_vocab()
    del vocab["<|bicodec_semantic_7|>"]
    with pytest.raises(MissingTokensError, match=r"gaps.*first: 7"):
        TokenTable.from_vocab(vocab)


def test_missing_markers_are_refused() -> None:
    vocab = shifted_tokenizer().get_vocab()
    del vocab["<|start_semantic_token|>"]
    with pytest.raises(MissingTokensError, match=re.escape("<|start_semantic_token|>")):
        TokenTable.from_vocab(vocab)
    assert issubclass(MissingTokensError, ValueError)
