"""The benchmark corpus: fixed groups, stable ids, deterministic order, round-robin picks."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from bench.corpus import KINDS, Text, load_corpus, pick

DEVANAGARI = re.compile("[\u0900-\u097f]")


def test_groups_have_their_sizes_in_a_fixed_order() -> None:
    texts = load_corpus()
    assert Counter(t.kind for t in texts) == {"short": 6, "medium": 6, "long": 4, "hindi": 4}
    assert [t.kind for t in texts] == sorted((t.kind for t in texts), key=KINDS.index)
    assert load_corpus() == texts


def test_ids_are_unique_and_name_the_kind() -> None:
    texts = load_corpus()
    assert len({t.id for t in texts}) == len(texts)
    assert all(t.id.startswith(f"{t.kind}-") for t in texts)
    assert texts[0].id == "short-0"


def test_lengths_match_the_groups() -> None:
    texts = load_corpus()
    for t in texts:
        assert t.text.strip() == t.text and t.text
        words = len(t.text.split())
        sentences = len(re.findall(r"[.!?।]", t.text))
        if t.kind == "short":
            assert 3 <= words <= 8, t
        elif t.kind == "medium":
            assert 1 <= sentences <= 2, t
        elif t.kind == "long":
            assert 3 <= sentences <= 5, t
    hindi = [t for t in texts if t.kind == "hindi"]
    assert all(DEVANAGARI.search(t.text) for t in hindi)
    assert len({len(t.text) for t in hindi}) == len(hindi)


def test_pick_is_round_robin_offset_by_client() -> None:
    texts = [Text(f"x-{i}", "x", str(i)) for i in range(3)]
    assert [pick(texts, 0, turn).id for turn in range(4)] == ["x-0", "x-1", "x-2", "x-0"]
    assert [pick(texts, 2, turn).id for turn in range(3)] == ["x-2", "x-0", "x-1"]
    with pytest.raises(ValueError):
        pick([], 0, 0)
