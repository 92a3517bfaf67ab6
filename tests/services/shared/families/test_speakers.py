from __future__ import annotations

import json
from pathlib import Path

import pytest

from voxserve.families.speakers import DEFAULT_SPEAKER_PROMPT, SpeakerSet, check_speaker_name


def test_a_pack_without_the_file_names_no_speakers(tmp_path: Path) -> None:
    assert SpeakerSet.from_pack(tmp_path) is None


def test_written_and_read_back(tmp_path: Path) -> None:
    speakers = SpeakerSet(("aarav", "diya"), "<|task_tts|><|start_content|>[{speaker}] {text}<|end_content|>")
    speakers.write(tmp_path)
    assert SpeakerSet.from_pack(tmp_path) == speakers


def test_the_default_prompt_applies_when_the_file_has_none(tmp_path: Path) -> None:
    (tmp_path / "speakers.json").write_text(json.dumps({"speakers": ["tara"]}))
    speakers = SpeakerSet.from_pack(tmp_path)
    assert speakers is not None and speakers.prompt == DEFAULT_SPEAKER_PROMPT


def test_render_keeps_braces_and_tags_in_the_text() -> None:
    speakers = SpeakerSet(("diya",))
    rendered = speakers.render("diya", "Sets {a, b} <sigh> {speaker}")
    assert rendered == "<|task_tts|><|start_content|>diya: Sets {a, b} <sigh> {speaker}<|end_content|>"


@pytest.mark.parametrize(
    ("document", "match"),
    [
        ({"speakers": []}, "at least one"),
        ({"speakers": ["a", "a"]}, "unique"),
        ({"speakers": "tara"}, "list of names"),
        ({}, "speakers"),
        ({"speakers": ["tara"], "prompt": "{speaker} only"}, r"\{text\} exactly once"),
        ({"speakers": ["tara"], "prompt": "{speaker}{speaker}{text}"}, r"\{speaker\} exactly once"),
        ({"speakers": ["ta<|x|>ra"]}, "markup"),
    ],
)
def test_bad_files_are_refused_naming_the_file(tmp_path: Path, document: dict, match: str) -> None:
    (tmp_path / "speakers.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=match) as raised:
        SpeakerSet.from_pack(tmp_path)
    assert "speakers.json" in str(raised.value)


@pytest.mark.parametrize("name", ["", " tara", "ta:ra", "a\nb", "<laugh>", "x" * 65])
def test_names_that_cannot_stand_in_a_prompt_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="speaker name"):
        check_speaker_name(name)


@pytest.mark.parametrize("name", ["tara", "Mary Ann", "ऋतिका", "zoe-2"])
def test_names_that_can(name: str) -> None:
    assert check_speaker_name(name) == name


def test_check_lists_the_packs_speakers() -> None:
    with pytest.raises(ValueError, match="'bob' is not one of this pack's speakers: tara, leo"):
        SpeakerSet(("tara", "leo")).check("bob")
