"""The chatterbox pack family: its layout, its detection, its voices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voxserve.cli import main
from voxserve.families.pack import Pack
from voxserve.generator.t3.checkpoint import read_t3_state
from voxserve.generator.t3.config import FULL, TINY, T3Config
from voxserve.generator.t3.text import T3Tokenizer
from voxserve.random_packs.voices import read_conds_voices
from voxserve.random_packs.writer import write_random_pack
from voxserve.vocoder.codecs.s3gen import config as s3gen_config
from voxserve.vocoder.codecs.s3gen.codec import S3GenCodec


@pytest.fixture(scope="module")
def chatterbox_pack(tmp_path_factory: pytest.TempPathFactory) -> Pack:
    root = tmp_path_factory.mktemp("chatterbox-pack")
    assert main(["pack", "tiny", "--family", "chatterbox", str(root), "--seed", "5"]) == 0
    return Pack.open(root)


def test_the_pack_is_written_in_its_layout_and_opens_as_chatterbox(chatterbox_pack: Pack) -> None:
    root = chatterbox_pack.root
    for name in (
        "t3_cfg.safetensors",
        "t3.json",
        "tokenizer.json",
        "s3gen.safetensors",
        "s3gen.json",
        "conds.pt",
        "voices/narrator.pt",
        "voices.json",
    ):
        assert (root / name).is_file(), name
    assert chatterbox_pack.family.name == "chatterbox"  # not "s3", though s3gen.safetensors is there
    assert T3Config.of_pack(root) == TINY
    assert len(read_t3_state(root / "t3_cfg.safetensors", TINY)) == 22 + 9 * TINY.layers
    assert T3Tokenizer(root / "tokenizer.json", TINY).vocab_size == 704
    codec = S3GenCodec.from_pack(root)
    assert codec.config == s3gen_config.TINY and codec.sample_rate == 24000


def test_the_voices_json_entries_point_at_valid_conditioning(chatterbox_pack: Pack) -> None:
    assert chatterbox_pack.voices_file is not None
    entries = json.loads(chatterbox_pack.voices_file.read_text())["voices"]
    assert [(e["id"], e["family"], e["conditioning"]) for e in entries] == [
        ("default", "chatterbox", "conds.pt"),
        ("narrator", "chatterbox", "voices/narrator.pt"),
    ]
    voices = {e["id"]: read_conds_voices(chatterbox_pack.root / e["conditioning"]) for e in entries}
    for t3, s3 in voices.values():
        t3.validate(TINY)
        s3.validate(s3gen_config.TINY.flow)
        assert t3.prompt_tokens.numel() == 150 and s3.prompt_tokens.numel() == 50
    assert voices["default"][0].exaggeration == pytest.approx(0.5)
    assert voices["narrator"][0].exaggeration == pytest.approx(0.7)
    assert not voices["default"][0].prompt_tokens.equal(voices["narrator"][0].prompt_tokens)


def test_a_pack_lacking_a_chatterbox_file_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "t3_cfg.safetensors").write_bytes(b"")
    (tmp_path / "s3gen.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"not a chatterbox model pack: missing .*tokenizer\.json"):
        Pack.open(tmp_path)


@pytest.mark.slow
def test_full_size_pack_has_the_published_sizes(tmp_path: Path) -> None:
    pack = write_random_pack(tmp_path / "full", "full", seed=1, family="chatterbox")
    assert not (pack.root / "t3.json").exists() and T3Config.of_pack(pack.root) == FULL
    assert (pack.root / "t3_cfg.safetensors").stat().st_size > 2_000_000_000
    state = read_t3_state(pack.root / "t3_cfg.safetensors", FULL)
    assert state["speech_head.weight"].shape == (8194, 1024)


def test_a_directory_that_is_not_a_pack_has_no_voices_file(tmp_path: Path) -> None:
    assert Pack(tmp_path).voices_file is None
    (tmp_path / "conds.pt").write_bytes(b"")
    assert Pack(tmp_path).voices_file is None  # conds.pt alone is not a chatterbox pack
