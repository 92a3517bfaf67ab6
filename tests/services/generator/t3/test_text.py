"""T3's text: upstream's punctuation clean-up case by case, and the tokenizer file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from voxserve.generator.t3.config import FULL
from voxserve.generator.t3.text import EMPTY_TEXT, T3Tokenizer, normalize
from voxserve.random_packs.t3_tokenizer import write_tokenizer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", EMPTY_TEXT),
        ("hello there", "Hello there."),
        ("Hello there", "Hello there."),
        ("éclair time", "Éclair time."),
        ("1 apple", "1 apple."),
        (" hi", "hi."),  # capitalised before the whitespace collapse, as upstream
        ("Lots   of\t\nspace  here", "Lots of space here."),
        ("Wait... what", "Wait,  what."),  # upstream keeps the space after the ellipsis too
        ("Wait…what", "Wait, what."),
        ("Note: this", "Note, this."),
        ("Yes - no", "Yes, no."),
        ("One; two", "One,  two."),  # "; " becomes ",  ": upstream collapses whitespace first
        ("Em—dash and en–dash", "Em-dash and en-dash."),
        ("Before , after", "Before, after."),
        ("“Quoted”", '"Quoted".'),
        ("It‘s ’fine’", "It's 'fine'."),
        ("Trailing spaces   ", "Trailing spaces."),
        ("Done.", "Done."),
        ("Really!", "Really!"),
        ("Why?", "Why?"),
        ("And then-", "And then-"),
        ("Well,", "Well,"),
        ("   ", "."),  # not empty, so no fallback sentence: upstream's behaviour
    ],
)
def test_normalize_matches_upstream_case_by_case(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("t3-text") / "tokenizer.json"
    write_tokenizer(path)
    return path


@pytest.fixture(scope="module")
def tokenizer(tokenizer_file: Path) -> T3Tokenizer:
    return T3Tokenizer(tokenizer_file)


def test_the_written_tokenizer_has_704_ids_and_the_specials_at_theirs(tokenizer_file: Path) -> None:
    raw = Tokenizer.from_file(str(tokenizer_file))
    assert raw.get_vocab_size(with_added_tokens=True) == 704
    assert sorted(raw.get_vocab().values()) == list(range(704))
    specials = {"[STOP]": 0, "[UNK]": 1, "[SPACE]": 2, "[START]": 255}
    assert {token: raw.token_to_id(token) for token in specials} == specials
    spec = json.loads(tokenizer_file.read_text())
    assert spec["model"]["type"] == "BPE" and spec["model"]["unk_token"] == "[UNK]"
    assert spec["pre_tokenizer"] == {"type": "Whitespace"}
    assert {t["content"]: t["id"] for t in spec["added_tokens"]} == specials
    for token in ("a", "Z", "7", "?", '"', "'"):  # every character of normalised English has an id
        assert raw.token_to_id(token) is not None, token


def test_writing_is_deterministic(tokenizer_file: Path, tmp_path: Path) -> None:
    write_tokenizer(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == tokenizer_file.read_bytes()


def test_hello_world_round_trips_with_space_tokens(tokenizer: T3Tokenizer, tokenizer_file: Path) -> None:
    ids = tokenizer.encode("Hello world.")
    assert all(0 <= i < 704 for i in ids) and 2 in ids
    raw = Tokenizer.from_file(str(tokenizer_file)).decode(ids, skip_special_tokens=False)
    assert raw.replace(" ", "") == "Hello[SPACE]world."
    assert tokenizer.decode(ids) == "Hello world."
    assert len(ids) < len("Hello world.")  # the merges are used


def test_encode_normalises_first(tokenizer: T3Tokenizer) -> None:
    assert tokenizer.encode("hello   world") == tokenizer.encode("Hello world.")


def test_prompt_ids_wrap_the_text_in_start_and_stop(tokenizer: T3Tokenizer) -> None:
    ids = tokenizer.prompt_ids("Hi.")
    assert ids[0] == 255 and ids[-1] == 0 and ids[1:-1] == tokenizer.encode("Hi.")
    assert tokenizer.vocab_size == 704


def test_from_file_is_the_constructor(tokenizer: T3Tokenizer, tokenizer_file: Path) -> None:
    assert T3Tokenizer.from_file(tokenizer_file).prompt_ids("Hi.") == tokenizer.prompt_ids("Hi.")


def test_unknown_characters_become_unk(tokenizer: T3Tokenizer) -> None:
    ids = tokenizer.encode("Café 東京")
    assert ids.count(1) == 3  # é and the two kanji
    assert tokenizer.decode(ids) == "Caf ."


def test_a_tokenizer_with_misplaced_specials_is_refused(tokenizer_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[START\] has id 255; the T3 model expects 5"):
        T3Tokenizer(tokenizer_file, dataclasses.replace(FULL, text_start=5))
    with pytest.raises(ValueError, match="704 ids; the T3 model has 600 text rows"):
        T3Tokenizer(tokenizer_file, dataclasses.replace(FULL, text_vocab=600))
