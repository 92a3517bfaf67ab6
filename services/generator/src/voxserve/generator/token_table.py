"""Token id -> (kind, index) table for a family's tokenizer.

Token ids differ between the real tokenizer, fine-tunes and the generated test packs, so the table is
read once from whatever tokenizer the pack holds: each audio token's index comes from its name
(Spark: ``<|bicodec_global_N|>``, ``<|bicodec_semantic_N|>``; s3: ``<|speech_N|>``; Orpheus:
``<custom_token_N>``, index N - 10, which is position * 4096 + code within a frame), never from its
id. Lookups are numpy array reads, so classifying a generated id costs the same whatever the vocabulary size.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Protocol

import numpy as np

GLOBAL_TOKEN_PATTERN = re.compile(r"<\|bicodec_global_(\d+)\|>")
SEMANTIC_TOKEN_PATTERN = re.compile(r"<\|bicodec_semantic_(\d+)\|>")

EOS_TOKEN = "<|im_end|>"
START_GLOBAL_TOKEN = "<|start_global_token|>"
END_GLOBAL_TOKEN = "<|end_global_token|>"
START_SEMANTIC_TOKEN = "<|start_semantic_token|>"
END_SEMANTIC_TOKEN = "<|end_semantic_token|>"


class TokenKind(IntEnum):
    OTHER = 0
    GLOBAL = 1
    SEMANTIC = 2
    START_GLOBAL = 3
    END_GLOBAL = 4
    START_SEMANTIC = 5
    END_SEMANTIC = 6
    EOS = 7


@dataclass(frozen=True)
class TokenGrammar:
    """The audio tokens and markers of one family's tokenizer."""

    family: str
    semantic_pattern: re.Pattern[str]
    global_pattern: re.Pattern[str] | None
    """None: the family has no global (voice) tokens."""
    markers: Mapping[TokenKind, str]
    semantic_offset: int = 0
    """Subtracted from N to give the index (Orpheus numbers its audio tokens from 10)."""
    semantic_count: int | None = None
    """Indices at or past this are not audio tokens (None: all that match)."""

    def matches(self, token: str) -> tuple[TokenKind, int] | None:
        if self.global_pattern is not None and (match := self.global_pattern.fullmatch(token)):
            return TokenKind.GLOBAL, int(match.group(1))
        if match := self.semantic_pattern.fullmatch(token):
            index = int(match.group(1)) - self.semantic_offset
            if 0 <= index and (self.semantic_count is None or index < self.semantic_count):
                return TokenKind.SEMANTIC, index
        return None


SPARK = TokenGrammar(
    "spark",
    SEMANTIC_TOKEN_PATTERN,
    GLOBAL_TOKEN_PATTERN,
    {
        TokenKind.START_GLOBAL: START_GLOBAL_TOKEN,
        TokenKind.END_GLOBAL: END_GLOBAL_TOKEN,
        TokenKind.START_SEMANTIC: START_SEMANTIC_TOKEN,
        TokenKind.END_SEMANTIC: END_SEMANTIC_TOKEN,
        TokenKind.EOS: EOS_TOKEN,
    },
)
S3 = TokenGrammar(
    "s3",
    re.compile(r"<\|speech_(\d+)\|>"),
    None,
    {
        TokenKind.START_SEMANTIC: "<|start_speech|>",
        TokenKind.END_SEMANTIC: "<|end_speech|>",
        TokenKind.EOS: EOS_TOKEN,
    },
)
# Orpheus: one frame is 7 codes of 4096; the audio token of position p, code c is
# <custom_token_{10 + p * 4096 + c}>. The first custom tokens are its markers.
ORPHEUS_FRAME_CODES = 7
ORPHEUS_CODEBOOK_SIZE = 4096
ORPHEUS_AUDIO_OFFSET = 10
ORPHEUS = TokenGrammar(
    "orpheus",
    re.compile(r"<custom_token_(\d+)>"),
    None,
    {
        TokenKind.START_SEMANTIC: "<custom_token_1>",  # start of speech
        TokenKind.END_SEMANTIC: "<custom_token_2>",  # end of speech
        TokenKind.EOS: "<|eot_id|>",
    },
    semantic_offset=ORPHEUS_AUDIO_OFFSET,
    semantic_count=ORPHEUS_FRAME_CODES * ORPHEUS_CODEBOOK_SIZE,
)
GRAMMARS = {g.family: g for g in (SPARK, S3, ORPHEUS)}

NO_INDEX = -1


class MissingTokensError(ValueError):
    """The tokenizer lacks tokens a Spark-style model needs."""


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
    family: str = "spark"

    @classmethod
    def from_tokenizer(
        cls, tokenizer: SupportsGetVocab, vocab_size: int | None = None, grammar: TokenGrammar = SPARK
    ) -> TokenTable:
        """Build the table from the tokenizer's vocabulary.

        ``vocab_size`` sizes the arrays to the model's (possibly padded) vocabulary; by default they
        cover the tokenizer's largest id.
        """
        return cls.from_vocab(tokenizer.get_vocab(), vocab_size, grammar)

    @classmethod
    def from_vocab(
        cls, vocab: Mapping[str, int], vocab_size: int | None = None, grammar: TokenGrammar = SPARK
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
