"""Every registered family declares everything the services look up, and packs find theirs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from voxserve.families.family import Family, TokenKind, VoiceParts
from voxserve.families.pack import Pack
from voxserve.families.registry import DEFAULT_FAMILY, FAMILIES, family_named, family_of
from voxserve.v1 import generator_pb2

GENERATOR_VOICE_FIELDS = {
    f.name for f in generator_pb2.GenerateRequest.DESCRIPTOR.oneofs_by_name["voice"].fields
}
SAMPLING_FIELDS = set(generator_pb2.SamplingParams.DESCRIPTOR.fields_by_name)


def test_the_registry_holds_the_four_families_under_their_names() -> None:
    assert set(FAMILIES) == {"spark", "s3", "orpheus", "chatterbox"}
    assert all(name == family.name for name, family in FAMILIES.items())
    assert DEFAULT_FAMILY is FAMILIES["spark"]
    assert family_named("orpheus") is FAMILIES["orpheus"]
    with pytest.raises(
        ValueError, match="family 'bark' is unknown; families: spark, chatterbox, s3, orpheus"
    ):
        family_named("bark")


@pytest.mark.parametrize("family", FAMILIES.values(), ids=lambda f: f.name)
def test_each_family_declares_everything(family: Family) -> None:
    assert family.summary and family.identifying_path and family.pack_files
    assert family.sample_rate in (16000, 22050, 24000, 44100, 48000)
    assert family.samples_per_token > 0 and family.codes_per_token >= 1
    assert family.codec in {"bicodec", "s3gen", "snac"}
    assert 0 < family.first_chunk_tokens <= family.max_chunk_tokens
    assert callable(family.read_voice)
    assert set(family.generator_voice_fields) <= GENERATOR_VOICE_FIELDS
    assert family.name in family.generator_voice_hint
    assert set(family.sampling_fields) <= SAMPLING_FIELDS
    assert family.registry_keys
    if family.grammar is not None:
        assert family.grammar.family == family.name
        assert TokenKind.START_SEMANTIC in family.grammar.markers and TokenKind.EOS in family.grammar.markers
    # Frozen: a description is looked up, never changed by a service.
    with pytest.raises(dataclasses.FrozenInstanceError):
        family.name = "other"  # type: ignore[misc]


def test_rates_are_the_specified_ones() -> None:
    rates = {f.name: (f.sample_rate, f.samples_per_token, f.codes_per_token) for f in FAMILIES.values()}
    assert rates == {
        "spark": (16000, 320, 1),
        "s3": (24000, 960, 1),
        "chatterbox": (24000, 960, 1),
        "orpheus": (24000, 2048, 7),
    }
    # Generator tokens a second: spark 50 semantic, s3 and chatterbox 25, orpheus 7 codes per frame.
    per_second = {f.name: round(f.generator_tokens_per_second, 3) for f in FAMILIES.values()}
    assert per_second == {
        "spark": 50.0,
        "s3": 25.0,
        "chatterbox": 25.0,
        "orpheus": round(24000 / 2048 * 7, 3),
    }


def test_only_spark_writes_its_own_voice() -> None:
    assert [f.name for f in FAMILIES.values() if f.voice_from_generator] == ["spark"]


def test_a_pack_is_found_by_its_identifying_path_in_registry_order(tmp_path: Path) -> None:
    assert family_of(tmp_path) is None
    (tmp_path / "s3gen.safetensors").write_bytes(b"")
    assert family_of(tmp_path) is FAMILIES["s3"]
    # A chatterbox pack has S3Gen's checkpoint too: chatterbox is tried first.
    (tmp_path / "t3_cfg.safetensors").write_bytes(b"")
    assert family_of(tmp_path) is FAMILIES["chatterbox"]
    assert Pack(tmp_path).family is FAMILIES["chatterbox"]


def test_a_directory_that_is_no_pack_names_every_family_marker(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"BiCodec \(spark\).*SNAC \(orpheus\)"):
        _ = Pack(tmp_path).family
    with pytest.raises(FileNotFoundError, match=r"not a spark model pack: missing .*LLM/config\.json"):
        Pack.open(tmp_path)


@pytest.mark.parametrize(
    ("family", "entry", "expected"),
    [
        ("spark", {"global_ids": list(range(32))}, VoiceParts(global_ids=tuple(range(32)))),
        ("spark", {"gender": "male", "pitch": 1}, VoiceParts(gender="male", pitch=1)),
        ("spark", {"speaker": "aarav"}, VoiceParts(speaker="aarav")),
        ("orpheus", {"speaker": "tara"}, VoiceParts(speaker="tara")),
    ],
)
def test_voice_entries_read_into_their_parts(
    family: str, entry: dict, expected: VoiceParts, tmp_path: Path
) -> None:
    assert family_named(family).read_voice(entry, tmp_path) == expected


@pytest.mark.parametrize(
    ("family", "entry", "message"),
    [
        ("spark", {"global_ids": [1, 2]}, r"global_ids must be 32 ids in \[0, 4096\)"),
        ("spark", {"gender": "other"}, "gender must be female or male"),
        ("spark", {"pitch": 5}, "pitch and speed must be integers 0..4"),
        ("spark", {"speaker": "a", "gender": "male"}, "a speaker voice takes no global_ids or style"),
        ("orpheus", {}, "an orpheus voice needs a speaker name"),
        ("s3", {}, "an s3 voice needs a conditioning file"),
        ("chatterbox", {}, "a chatterbox voice needs a conditioning file"),
        ("s3", {"conditioning": "missing.safetensors"}, r"voice file .*missing\.safetensors"),
    ],
)
def test_a_bad_voice_entry_is_refused_naming_the_key(
    family: str, entry: dict, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        family_named(family).read_voice(entry, tmp_path)
