"""A Chatterbox `tokenizer.json` for random packs: upstream's format, merges learnt from the
embedded corpus."""

from __future__ import annotations

import json
import string
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

from voxserve.generator.t3.config import FULL
from voxserve.generator.t3.text import SPECIAL_IDS, UNK
from voxserve.random_packs.tiny_llm import corpus_lines


def build_tokenizer(vocab_size: int = FULL.text_vocab) -> Tokenizer:
    """A tokenizer in upstream's format: BPE over single characters (letters, digits, ASCII
    punctuation) with merges learnt from the embedded English corpus, a Whitespace
    pre-tokenizer, `[UNK]` for characters outside the alphabet and the special tokens at their
    ids. Deterministic: it depends on no seed."""
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + string.punctuation
    learner = Tokenizer(BPE(unk_token=UNK))
    learner.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_IDS),
        min_frequency=1,
        show_progress=False,
        initial_alphabet=list(alphabet),
        limit_alphabet=len(alphabet),
    )
    learner.train_from_iterator([line for line in corpus_lines() if line.isascii()], trainer)
    learnt = sorted(learner.get_vocab().items(), key=lambda item: item[1])
    # The single characters first, in the alphabet's order; then what the merges made.
    pieces = list(alphabet) + [token for token, _ in learnt if len(token) > 1]

    vocab = dict(SPECIAL_IDS)
    free = (i for i in range(vocab_size) if i not in SPECIAL_IDS.values())
    vocab |= {piece: next(free) for piece in pieces}
    if len(vocab) != vocab_size:
        raise RuntimeError(f"the tokenizer came out with {len(vocab)} ids, not {vocab_size}")
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=_merges(learner), unk_token=UNK, fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_IDS])
    return tokenizer


def write_tokenizer(path: Path) -> None:
    build_tokenizer().save(str(path), pretty=True)


def _merges(tokenizer: Tokenizer) -> list[tuple[str, str]]:
    raw = json.loads(tokenizer.to_str())["model"]["merges"]
    # Older tokenizers releases write a merge as "a b", newer ones as ["a", "b"].
    pairs = [m.split(" ", 1) if isinstance(m, str) else m for m in raw]
    return [(a, b) for a, b in pairs]
