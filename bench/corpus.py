"""The fixed benchmark corpus: short, medium and long English lines plus Hindi, kept in the repo
so that every run (and every system) speaks exactly the same texts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CORPUS_PATH = Path(__file__).with_name("corpus.json")
KINDS = ("short", "medium", "long", "hindi")


@dataclass(frozen=True)
class Text:
    id: str
    """Stable id, `<kind>-<index>`, e.g. `short-0`."""
    kind: str
    text: str


def load_corpus(path: Path = CORPUS_PATH) -> list[Text]:
    """Every text, grouped by kind in `KINDS` order and in file order within a kind."""
    groups: dict[str, list[str]] = json.loads(Path(path).read_text(encoding="utf-8"))
    unknown = set(groups) - set(KINDS)
    if unknown:
        raise ValueError(f"{path}: unknown kinds {sorted(unknown)}; expected {list(KINDS)}")
    return [
        Text(id=f"{kind}-{i}", kind=kind, text=line)
        for kind in KINDS
        for i, line in enumerate(groups.get(kind, []))
    ]


def pick(texts: Sequence[Text], client: int, turn: int) -> Text:
    """The text a client speaks on its `turn`-th request: round-robin, offset by the client's
    index so that concurrent clients start on different texts."""
    if not texts:
        raise ValueError("no texts to pick from")
    return texts[(client + turn) % len(texts)]
