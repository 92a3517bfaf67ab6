"""The voice registry: built-in voices, JSON registries, style overrides and the proto view."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from voxserve.families import spark
from voxserve.families.family import VoiceParts
from voxserve.gateway.voices import BUILTIN_VOICES, Voice, VoiceRegistry
from voxserve.random_packs.voices import random_s3_voice, write_conds
from voxserve.v1 import generator_pb2, speech_pb2

VS = generator_pb2.VoiceStyle


def test_builtin_ids() -> None:
    assert VoiceRegistry.builtin().ids == ["default", "female", "male"]
    assert [v.id for v in VoiceRegistry.builtin()] == ["default", "female", "male"]


def test_default_is_fixed_with_32_ids_in_range() -> None:
    voice = VoiceRegistry.builtin().get("default")
    assert voice is not None
    assert not voice.controllable
    assert voice.parts.global_ids is not None
    assert len(voice.parts.global_ids) == 32
    assert all(isinstance(g, int) and 0 <= g < 4096 for g in voice.parts.global_ids)
    assert len(set(voice.parts.global_ids)) > 1


def test_default_ids_are_stable_across_registries() -> None:
    a = VoiceRegistry.builtin().get("default")
    b = VoiceRegistry.builtin().get("default")
    assert a is not None and b is not None
    assert a.parts.global_ids == b.parts.global_ids
    assert a.parts.global_ids == BUILTIN_VOICES[0].parts.global_ids


@pytest.mark.parametrize(("voice_id", "gender"), [("female", "female"), ("male", "male")])
def test_controllable_builtins(voice_id: str, gender: str) -> None:
    voice = VoiceRegistry.builtin().get(voice_id)
    assert voice is not None
    assert voice.controllable
    assert voice.parts.global_ids is None
    assert (voice.parts.gender, voice.parts.pitch, voice.parts.speed) == (gender, 2, 2)


def test_empty_id_means_default_and_unknown_is_none() -> None:
    registry = VoiceRegistry.builtin()
    assert registry.get("") is registry.get("default")
    assert registry.get("") is not None
    assert registry.get("nobody") is None
    assert registry.get("Default") is None


def test_style_without_override_uses_voice_settings() -> None:
    voice = Voice("v", "", parts=VoiceParts(gender="male", pitch=1, speed=3))
    style = voice.style(None)
    assert (style.gender, style.pitch, style.speed) == (VS.MALE, 1, 3)


def test_style_override_replaces_pitch_and_speed_keeps_gender() -> None:
    voice = Voice("v", "", parts=VoiceParts(gender="male", pitch=1, speed=3))
    style = voice.style(VS(pitch=4, speed=0))
    assert (style.gender, style.pitch, style.speed) == (VS.MALE, 4, 0)


def test_style_override_with_gender_replaces_it() -> None:
    voice = Voice("v", "", parts=VoiceParts(gender="male"))
    assert voice.style(VS(gender=VS.FEMALE, pitch=2, speed=2)).gender == VS.FEMALE
    female = Voice("w", "", parts=VoiceParts(gender="female"))
    assert female.style(VS(gender=VS.MALE, pitch=2, speed=2)).gender == VS.MALE


def test_style_does_not_mutate_override() -> None:
    override = VS(pitch=3, speed=1)
    Voice("v", "", parts=VoiceParts(gender="male")).style(override)
    assert override.gender == VS.GENDER_UNSPECIFIED


def _write(tmp_path: Path, voices: list[dict]) -> Path:
    path = tmp_path / "voices.json"
    path.write_text(json.dumps({"voices": voices}))
    return path


def test_from_file_loads_fixed_and_controllable_voices(tmp_path: Path) -> None:
    ids = list(range(100, 132))
    path = _write(
        tmp_path,
        [
            {"id": "alice", "description": "fixed", "global_ids": ids},
            {"id": "bob", "gender": "male", "pitch": 0, "speed": 4},
            {"id": "carol"},
        ],
    )
    registry = VoiceRegistry.from_file(path)
    assert registry.ids == ["alice", "bob", "carol"]
    alice, bob, carol = (registry.get(i) for i in registry.ids)
    assert alice is not None and bob is not None and carol is not None
    assert alice.parts.global_ids == tuple(ids) and not alice.controllable
    assert alice.description == "fixed"
    assert bob.controllable and (bob.parts.gender, bob.parts.pitch, bob.parts.speed) == ("male", 0, 4)
    assert (carol.parts.gender, carol.parts.pitch, carol.parts.speed, carol.description) == (
        "female",
        2,
        2,
        "",
    )
    # Without a voice called "default", requests that name no voice get the file's first voice.
    assert registry.get("") is alice
    assert registry.get("default") is None


def test_from_file_accepts_id_boundaries(tmp_path: Path) -> None:
    ids = [0] * 16 + [4095] * 16
    registry = VoiceRegistry.from_file(_write(tmp_path, [{"id": "edge", "global_ids": ids}]))
    voice = registry.get("edge")
    assert voice is not None and voice.parts.global_ids == tuple(ids)


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"id": "short", "global_ids": [1] * 31}, "global_ids"),
        ({"id": "long", "global_ids": [1] * 33}, "global_ids"),
        ({"id": "big", "global_ids": [1] * 31 + [4096]}, "global_ids"),
        ({"id": "neg", "global_ids": [-1] + [1] * 31}, "global_ids"),
        ({"id": "robot", "gender": "robot"}, "gender"),
    ],
)
def test_from_file_rejects_bad_voice_naming_it(tmp_path: Path, entry: dict, needle: str) -> None:
    path = _write(tmp_path, [{"id": "fine"}, entry])
    with pytest.raises(ValueError) as info:
        VoiceRegistry.from_file(path)
    assert repr(entry["id"]) in str(info.value)
    assert needle in str(info.value)


def test_to_proto_fixed() -> None:
    voice = VoiceRegistry.builtin().get("default")
    assert voice is not None
    msg = voice.to_proto()
    assert isinstance(msg, speech_pb2.Voice)
    assert msg.id == "default"
    assert msg.family == "spark"
    assert msg.sample_rate == spark.FAMILY.sample_rate == 16000
    assert msg.description == voice.description and msg.description
    assert msg.controllable is False


def test_to_proto_controllable() -> None:
    msg = Voice("x", "desc", parts=VoiceParts(gender="male")).to_proto()
    assert (msg.id, msg.family, msg.sample_rate, msg.description, msg.controllable) == (
        "x",
        "spark",
        16000,
        "desc",
        True,
    )


def test_an_empty_registry_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "voices.json"
    path.write_text('{"voices": []}')
    with pytest.raises(ValueError, match="at least one voice"):
        VoiceRegistry.from_file(path)


def test_yaml_mapping_registry_with_pack_labels(tmp_path: Path) -> None:
    path = tmp_path / "voices.yaml"
    path.write_text(
        "voices:\n"
        "  narrator:\n"
        "    pack: spark-tts-0.5b\n"
        "    description: Fixed narrator\n"
        f"    global_ids: {list(range(32))}\n"
        "  calm:\n"
        "    gender: male\n"
        "    pitch: 1\n"
    )
    registry = VoiceRegistry.from_file(path)
    assert registry.ids == ["narrator", "calm"]
    narrator, calm = (registry.get(i) for i in registry.ids)
    assert narrator is not None and calm is not None
    assert narrator.parts.global_ids == tuple(range(32)) and narrator.pack == "spark-tts-0.5b"
    assert narrator.to_proto().pack == "spark-tts-0.5b"
    assert (calm.parts.gender, calm.parts.pitch, calm.controllable, calm.pack) == ("male", 1, True, "")
    assert registry.default is narrator  # no "default" id: the first voice


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("voices: [{id: a}, {id: a}]", "repeated: a"),
        ("voices: 3", "'voices' must be"),
        ("nothing: here", "'voices' must be"),
        ("voices: {a: {pitch: 7}}", "pitch and speed must be integers 0..4"),
        ("voices: [a: 1", "voice registry"),
    ],
)
def test_bad_registry_files_are_refused_naming_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "voices.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=needle):
        VoiceRegistry.from_file(path)


def test_chatterbox_voices_come_from_conds_files(tmp_path: Path) -> None:
    import torch

    from voxserve.generator.t3.voice import T3Voice
    from voxserve.vocoder.codecs.s3gen.config import TINY

    t3 = T3Voice(torch.linspace(-1, 1, 256), torch.arange(100, 250), exaggeration=0.7)
    s3 = random_s3_voice(TINY.flow, 20, seed=3)
    write_conds(tmp_path / "calm.pt", t3, s3)
    entry = {"id": "calm", "family": "chatterbox", "conditioning": "calm.pt", "description": "Calm"}
    (tmp_path / "voices.json").write_text(json.dumps({"voices": [entry]}))
    voice = VoiceRegistry.from_file(tmp_path / "voices.json").get("calm")
    assert voice is not None and voice.family.name == "chatterbox"
    assert voice.to_proto().sample_rate == 24000
    assert voice.parts.chatterbox is not None and voice.parts.s3_prompt is not None
    assert list(voice.parts.chatterbox.prompt_tokens) == list(range(100, 250))
    assert np.allclose(voice.parts.chatterbox.speaker_embedding, t3.speaker_embedding.numpy())
    assert voice.parts.chatterbox.exaggeration == pytest.approx(0.7)
    assert list(voice.parts.s3_prompt.prompt_tokens) == s3.prompt_tokens.tolist()
    mel = np.frombuffer(voice.parts.s3_prompt.prompt_mel_f32, "<f4").reshape(-1, 80)
    assert np.array_equal(mel, s3.prompt_mel.numpy())
    assert np.allclose(voice.parts.s3_prompt.xvector, s3.xvector.numpy())


@pytest.mark.parametrize(
    ("conditioning", "needle"),
    [(None, "a chatterbox voice needs a conditioning file"), ("missing.pt", "missing.pt")],
)
def test_bad_chatterbox_entries_are_refused(tmp_path: Path, conditioning: str | None, needle: str) -> None:
    entry: dict[str, str] = {"id": "x", "family": "chatterbox"}
    if conditioning is not None:
        entry["conditioning"] = conditioning
    (tmp_path / "voices.json").write_text(json.dumps({"voices": [entry]}))
    with pytest.raises(ValueError, match=needle):
        VoiceRegistry.from_file(tmp_path / "voices.json")


def test_a_conds_file_is_a_registry_of_its_one_voice(tmp_path: Path) -> None:
    from voxserve.families.pack import Pack
    from voxserve.random_packs.tiny_chatterbox import write_chatterbox_pack

    write_chatterbox_pack(tmp_path, seed=5)
    (tmp_path / "voices.json").unlink()  # as a Chatterbox download comes
    registry_file = Pack(tmp_path).voices_file
    assert registry_file == tmp_path / "conds.pt"
    registry = VoiceRegistry.from_file(registry_file)
    assert registry.ids == ["default"]
    assert registry.default.family.name == "chatterbox" and registry.default.parts.chatterbox is not None
    assert len(registry.default.parts.chatterbox.prompt_tokens) == 150
