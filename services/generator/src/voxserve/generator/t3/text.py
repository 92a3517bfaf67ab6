"""T3's text side: Chatterbox's punctuation clean-up, its `tokenizer.json` (a character-level BPE
of 704 ids where spaces are a token of their own), and a writer of such a file for random packs."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from voxserve.generator.t3.config import FULL, T3Config

TOKENIZER_FILE = "tokenizer.json"
START = "[START]"
STOP = "[STOP]"
UNK = "[UNK]"
SPACE = "[SPACE]"
# Ids the model's embedding rows are trained for; `[START]` sits in the middle of the vocabulary.
SPECIAL_IDS = {STOP: 0, UNK: 1, SPACE: 2, START: 255}
EMPTY_TEXT = "You need to add some text for me to talk."

# Applied in this order (order matters: "..." must become ", " before ":" or " - " are looked at).
_REPLACEMENTS = (
    ("...", ", "),
    ("…", ", "),
    (":", ","),
    (" - ", ", "),
    (";", ", "),
    ("—", "-"),
    ("–", "-"),
    (" ,", ","),
    ("“", '"'),
    ("”", '"'),
    ("‘", "'"),
    ("’", "'"),
)
_SENTENCE_ENDS = (".", "!", "?", "-", ",")


def normalize(text: str) -> str:
    """Upstream's clean-up before tokenising, step for step: the model was trained on its output.
    Capitalising comes before whitespace is collapsed, as upstream (" hi" stays lower case)."""
    if not text:
        return EMPTY_TEXT
    if text[0].islower():
        text = text[0].upper() + text[1:]
    text = " ".join(text.split())
    for old, new in _REPLACEMENTS:
        text = text.replace(old, new)
    text = text.rstrip(" ")
    if not text.endswith(_SENTENCE_ENDS):
        text += "."
    return text


class T3Tokenizer:
    """A Chatterbox `tokenizer.json`, checked to put the start and stop ids where the model's
    configuration expects them."""

    def __init__(self, path: Path, config: T3Config = FULL) -> None:
        self._tokenizer = Tokenizer.from_file(str(path))
        for token, expected in ((START, config.text_start), (STOP, config.text_stop)):
            found = self._tokenizer.token_to_id(token)
            if found != expected:
                raise ValueError(f"{path}: {token} has id {found}; the T3 model expects {expected}")
        if self.vocab_size > config.text_vocab:
            raise ValueError(f"{path}: {self.vocab_size} ids; the T3 model has {config.text_vocab} text rows")
        self.start_id, self.stop_id = config.text_start, config.text_stop

    @classmethod
    def from_file(cls, path: Path, config: T3Config = FULL) -> T3Tokenizer:
        return cls(path, config)

    @property
    def vocab_size(self) -> int:
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        """The ids of the normalised text, spaces as `[SPACE]` (no start or stop id)."""
        return list(self._tokenizer.encode(normalize(text).replace(" ", SPACE)).ids)

    def prompt_ids(self, text: str) -> list[int]:
        """The text rows of a T3 prompt: start id, the text's ids, stop id."""
        return [self.start_id, *self.encode(text), self.stop_id]

    def decode(self, ids: list[int]) -> str:
        """Text back from ids, as upstream: `[SPACE]` is a space, stop and unknown ids vanish."""
        joined = self._tokenizer.decode(ids, skip_special_tokens=False)
        return joined.replace(" ", "").replace(SPACE, " ").replace(STOP, "").replace(UNK, "")
