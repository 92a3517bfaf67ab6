"""Token id -> (kind, index) table for a family's tokenizer (its `TokenGrammar`).

Token ids differ between the real tokenizer, fine-tunes and the generated test packs, so the table is
read once from whatever tokenizer the pack holds: each audio token's index comes from its name
(Spark: ``<|bicodec_global_N|>``, ``<|bicodec_semantic_N|>``; s3: ``<|speech_N|>``; Orpheus:
``<custom_token_N>``, index N - 10, which is position * 4096 + code within a frame), never from its
id. Lookups are numpy array reads, so classifying a generated id costs the same whatever the vocabulary size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

import numpy as np

from voxserve.families import spark
from voxserve.families.family import TokenGrammar, TokenKind

NO_INDEX = -1


class MissingTokensError(ValueError):
    """The tokenizer lacks tokens its family's grammar names."""


class SupportsGetVocab(Protocol):
    """Both ``tokenizers.Tokenizer`` and transformers tokenizers qualify (added tokens included)."""

    def get_vocab(self) -> Mapping[str, int]: ...


@dataclass(frozen=True, eq=False)
class TokenTable:
    """Kind and index of every token id of one tokenizer.

    ``kind[id]`` is a ``TokenKind`` value and ``index[id]`` the BiCodec index (global n or semantic n),
    ``NO_INDEX`` for every other token. Ids at or past ``size`` (e.g. a model vocabulary padded beyond
    the tokenizer) are ``OTHER``.
    """

    kind: np.ndarray
    index: np.ndarray
    global_ids: np.ndarray
    semantic_ids: np.ndarray
    marker_ids: Mapping[TokenKind, int]
    family: str
    """The grammar's family, named in messages."""

    @classmethod
    def from_tokenizer(
        cls, tokenizer: SupportsGetVocab, vocab_size: int | None = None, grammar: TokenGrammar = spark.GRAMMAR
    ) -> TokenTable:
        """Build the table from the tokenizer's vocabulary.

        ``vocab_size`` sizes the arrays to the model's (possibly padded) vocabulary; by default they
        cover the tokenizer's largest id.
        """
        return cls.from_vocab(tokenizer.get_vocab(), vocab_size, grammar)

    @classmethod
    def from_vocab(
        cls, vocab: Mapping[str, int], vocab_size: int | None = None, grammar: TokenGrammar = spark.GRAMMAR
    ) -> TokenTable:
        by_index: dict[TokenKind, dict[int, int]] = {TokenKind.GLOBAL: {}, TokenKind.SEMANTIC: {}}
        for token, token_id in vocab.items():
            if token.startswith("<") and (found := grammar.matches(token)):
                by_index[found[0]][found[1]] = token_id
        semantic_name = grammar.semantic_pattern.pattern.replace("\\|", "|").replace("(\\d+)", "N")
        semantic_ids = _dense_ids(by_index[TokenKind.SEMANTIC], semantic_name, grammar.family)
        if grammar.semantic_count is not None and len(semantic_ids) != grammar.semantic_count:
            raise MissingTokensError(
                f"tokenizer has {len(semantic_ids)} {semantic_name} audio tokens; "
                f"a {grammar.family}-family LLM has {grammar.semantic_count}"
            )
        if grammar.global_pattern is None:
            global_ids = np.zeros(0, dtype=np.int64)
        else:
            global_name = grammar.global_pattern.pattern.replace("\\|", "|").replace("(\\d+)", "N")
            global_ids = _dense_ids(by_index[TokenKind.GLOBAL], global_name, grammar.family)

        missing = [token for token in grammar.markers.values() if token not in vocab]
        if missing:
            raise MissingTokensError(
                f"tokenizer lacks the {grammar.family} marker tokens {', '.join(missing)}"
            )
        marker_ids = MappingProxyType({kind: int(vocab[token]) for kind, token in grammar.markers.items()})

        max_id = max(vocab.values())
        size = max_id + 1 if vocab_size is None else vocab_size
        if size <= max_id:
            raise ValueError(f"vocab_size {size} is smaller than the tokenizer's largest id {max_id} + 1")

        kind = np.full(size, TokenKind.OTHER, dtype=np.uint8)
        index = np.full(size, NO_INDEX, dtype=np.int32)
        kind[global_ids] = TokenKind.GLOBAL
        index[global_ids] = np.arange(len(global_ids), dtype=np.int32)
        kind[semantic_ids] = TokenKind.SEMANTIC
        index[semantic_ids] = np.arange(len(semantic_ids), dtype=np.int32)
        for marker_kind, token_id in marker_ids.items():
            kind[token_id] = marker_kind
        for array in (kind, index, global_ids, semantic_ids):
            array.flags.writeable = False
        return cls(kind, index, global_ids, semantic_ids, marker_ids, grammar.family)

    @property
    def size(self) -> int:
        return len(self.kind)

    @property
    def num_global(self) -> int:
        return len(self.global_ids)

    @property
    def num_semantic(self) -> int:
        return len(self.semantic_ids)

    @property
    def eos_id(self) -> int:
        return self.marker_ids[TokenKind.EOS]

    @property
    def start_global_id(self) -> int:
        return self.marker_ids[TokenKind.START_GLOBAL]

    @property
    def end_global_id(self) -> int:
        return self.marker_ids[TokenKind.END_GLOBAL]

    @property
    def start_semantic_id(self) -> int:
        return self.marker_ids[TokenKind.START_SEMANTIC]

    @property
    def end_semantic_id(self) -> int:
        return self.marker_ids[TokenKind.END_SEMANTIC]

    def global_token_id(self, n: int) -> int:
        if not 0 <= n < self.num_global:
            raise IndexError(f"global token index {n} is outside 0..{self.num_global - 1}")
        return int(self.global_ids[n])

    def semantic_token_id(self, n: int) -> int:
        if not 0 <= n < self.num_semantic:
            raise IndexError(f"semantic token index {n} is outside 0..{self.num_semantic - 1}")
        return int(self.semantic_ids[n])

    def kind_of(self, token_id: int) -> TokenKind:
        return TokenKind(self.kind[token_id]) if 0 <= token_id < self.size else TokenKind.OTHER

    def index_of(self, token_id: int) -> int:
        return int(self.index[token_id]) if 0 <= token_id < self.size else NO_INDEX

    def classify(self, ids: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kinds (uint8 ``TokenKind`` values) and indices (int32, ``NO_INDEX`` if none) of ``ids``."""
        ids = np.asarray(ids, dtype=np.int64)
        inside = (ids >= 0) & (ids < self.size)
        safe = np.where(inside, ids, 0)
        kinds = np.where(inside, self.kind[safe], np.uint8(TokenKind.OTHER)).astype(np.uint8)
        indices = np.where(inside, self.index[safe], np.int32(NO_INDEX)).astype(np.int32)
        return kinds, indices


def _dense_ids(ids_by_index: Mapping[int, int], name: str, family: str) -> np.ndarray:
    """Ids ordered by index; the indices must run 0..n-1 without gaps."""
    if not ids_by_index:
        raise MissingTokensError(f"tokenizer has no {name} tokens; is this a {family}-family LLM?")
    count = max(ids_by_index) + 1
    if len(ids_by_index) != count:
        gaps = sorted(set(range(count)) - set(ids_by_index))
        raise MissingTokensError(
            f"tokenizer's {name} tokens have gaps: {len(gaps)} of 0..{count - 1} missing (first: {gaps[0]})"
        )
    return np.array([ids_by_index[n] for n in range(count)], dtype=np.int64)
