"""The tiny speaker-name Spark fine-tune: 12 speakers, emotion tags, one voice per speaker."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from voxserve.families.pack import Pack
from voxserve.families.speakers import DEFAULT_SPEAKER_PROMPT, SpeakerSet
from voxserve.gateway.voices import VoiceRegistry
from voxserve.generator.prompts import SparkPromptBuilder
from voxserve.generator.token_table import TokenTable
from voxserve.random_packs.tiny_speakers import EMOTION_TAGS, SPEAKER_NAMES
from voxserve.random_packs.writer import write_random_pack


@pytest.fixture(scope="module")
def speaker_pack(tmp_path_factory: pytest.TempPathFactory) -> Pack:
    return write_random_pack(tmp_path_factory.mktemp("speakers"), "tiny", seed=3, speakers=True)


def test_a_spark_pack_with_twelve_speakers(speaker_pack: Pack) -> None:
    assert speaker_pack.family.name == "spark"
    speakers = SpeakerSet.from_pack(speaker_pack.root)
    assert speakers is not None and len(speakers.names) == 12 and speakers.names == SPEAKER_NAMES
    assert speakers.prompt == DEFAULT_SPEAKER_PROMPT


def test_emotion_tags_are_single_tokens_and_hindi_encodes(speaker_pack: Pack) -> None:
    tokenizer = AutoTokenizer.from_pretrained(speaker_pack.llm_dir)
    speakers = SpeakerSet.from_pack(speaker_pack.root)
    assert speakers is not None
    table = TokenTable.from_tokenizer(tokenizer)
    prompt = SparkPromptBuilder.from_token_table(table).speaker("नमस्ते <laugh> दोस्त", speakers, "meera")
    assert prompt == "<|task_tts|><|start_content|>meera: नमस्ते <laugh> दोस्त<|end_content|>"
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    for tag in EMOTION_TAGS[:2]:
        assert len(tokenizer(tag, add_special_tokens=False)["input_ids"]) == 1
    assert tokenizer.get_vocab()["<laugh>"] in ids
    assert tokenizer.decode(ids) == prompt


def test_every_speaker_is_a_registry_voice(speaker_pack: Pack) -> None:
    assert speaker_pack.voices_file is not None
    registry = VoiceRegistry.from_file(speaker_pack.voices_file)
    assert [v.parts.speaker for v in registry][1:] == list(SPEAKER_NAMES)
    voice = registry.get("kabir")
    assert voice is not None and voice.family.name == "spark" and not voice.controllable
    assert voice.reuses_first_voice and voice.to_proto().speaker == "kabir"
