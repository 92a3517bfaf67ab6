"""Upstream's `conds.pt`, both models' parts of a voice: written by the pack writers, read back
without torch by `voxserve.families.conds` (strictly: a missing or misshapen part is named)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from voxserve.families.conds import DEFAULT_EXAGGERATION
from voxserve.generator.t3.config import FULL
from voxserve.generator.t3.voice import T3Voice
from voxserve.random_packs.voices import random_s3_voice, random_t3_voice, read_conds_voices, write_conds
from voxserve.vocoder.codecs.s3gen import config as s3gen_config
from voxserve.vocoder.codecs.s3gen.voice import S3Voice


def _voices(prompt: int = 150, exaggeration: float = 0.7) -> tuple[T3Voice, S3Voice]:
    return (
        random_t3_voice(FULL, prompt, seed=4, exaggeration=exaggeration),
        random_s3_voice(s3gen_config.FULL.flow, 40, seed=4),
    )


def test_conds_round_trip(tmp_path: Path) -> None:
    t3, s3 = _voices()
    write_conds(tmp_path / "conds.pt", t3, s3)
    t3_back, s3_back = read_conds_voices(tmp_path / "conds.pt")
    assert torch.equal(t3_back.speaker_embedding, t3.speaker_embedding)
    assert torch.equal(t3_back.prompt_tokens, t3.prompt_tokens)
    assert t3_back.exaggeration == pytest.approx(0.7)
    t3_back.validate(FULL)
    for name in ("prompt_tokens", "prompt_mel", "xvector"):
        assert torch.equal(getattr(s3_back, name), getattr(s3, name)), name
    s3_back.validate(s3gen_config.FULL.flow)


def test_conds_are_written_in_upstreams_layout(tmp_path: Path) -> None:
    t3, s3 = _voices()
    write_conds(tmp_path / "conds.pt", t3, s3)
    raw = torch.load(tmp_path / "conds.pt", weights_only=True)
    assert set(raw) == {"t3", "gen"}
    t3_part, gen = raw["t3"], raw["gen"]
    assert set(t3_part) == {
        "speaker_emb",
        "clap_emb",
        "cond_prompt_speech_tokens",
        "cond_prompt_speech_emb",
        "emotion_adv",
    }
    assert t3_part["clap_emb"] is None and t3_part["cond_prompt_speech_emb"] is None
    assert t3_part["speaker_emb"].shape == (1, 256) and t3_part["speaker_emb"].dtype == torch.float32
    assert t3_part["cond_prompt_speech_tokens"].shape == (1, 150)
    assert t3_part["cond_prompt_speech_tokens"].dtype == torch.int64
    assert t3_part["emotion_adv"].shape == (1, 1, 1)
    assert set(gen) == {"prompt_token", "prompt_token_len", "prompt_feat", "prompt_feat_len", "embedding"}
    assert gen["prompt_token"].shape == (1, 40) and gen["prompt_token"].dtype == torch.int64
    assert gen["prompt_token_len"].tolist() == [40]
    assert gen["prompt_feat"].shape == (1, 80, 80) and gen["prompt_feat_len"] is None
    assert gen["embedding"].shape == (1, 192)


def _save(path: Path, edit: dict) -> Path:
    t3, s3 = _voices()
    write_conds(path, t3, s3)
    raw = torch.load(path, weights_only=True)
    for key, value in edit.items():
        part, _, field = key.partition(".")
        if not field:
            del raw[part]
        elif value is ...:
            del raw[part][field]
        else:
            raw[part][field] = value
    torch.save(raw, path)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"gen": None}, "lacks the 'gen' part"),
        ({"t3": None}, "lacks the 't3' part"),
        ({"t3.speaker_emb": ...}, r"lacks t3\.speaker_emb"),
        ({"t3.cond_prompt_speech_tokens": None}, r"lacks t3\.cond_prompt_speech_tokens"),
        ({"gen.embedding": ...}, r"lacks gen\.embedding"),
        ({"gen.prompt_feat": torch.zeros(2, 80, 80)}, r"gen\.prompt_feat must have a batch dimension of 1"),
        (
            {"gen.prompt_token_len": torch.tensor([39])},
            r"prompt_token_len is 39 but gen\.prompt_token has 40",
        ),
        ({"t3.emotion_adv": torch.zeros(1, 2)}, r"t3\.emotion_adv must hold one value"),
    ],
)
def test_a_conds_file_lacking_a_part_is_refused_naming_it(tmp_path: Path, edit: dict, message: str) -> None:
    path = _save(tmp_path / "conds.pt", edit)
    with pytest.raises(ValueError, match=message):
        read_conds_voices(path)


def test_a_plain_number_exaggeration_or_none_is_read_as_upstream(tmp_path: Path) -> None:
    t3, _ = read_conds_voices(_save(tmp_path / "a.pt", {"t3.emotion_adv": 0.3}))
    assert t3.exaggeration == pytest.approx(0.3)
    t3, _ = read_conds_voices(_save(tmp_path / "b.pt", {"t3.emotion_adv": ...}))
    assert t3.exaggeration == DEFAULT_EXAGGERATION


def test_a_file_that_is_not_a_conds_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk\.pt: not a readable conditionals file"):
        read_conds_voices(path)
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match="lacks the 't3' part"):
        read_conds_voices(path)
