"""The s3 pack family: its layout, its tokenizer's speech tokens, its prompt, its voices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from voxserve.cli import main
from voxserve.families import s3
from voxserve.families.family import TokenKind
from voxserve.families.pack import Pack
from voxserve.families.registry import FAMILIES
from voxserve.gateway.voices import VoiceRegistry
from voxserve.generator.prompts import s3_prompt
from voxserve.generator.servicer import parse_generate_request
from voxserve.generator.token_table import TokenTable
from voxserve.v1 import generator_pb2
from voxserve.vocoder.codecs.s3gen.codec import S3GenCodec
from voxserve.vocoder.codecs.s3gen.config import TINY
from voxserve.vocoder.codecs.s3gen.voice import S3Voice


@pytest.fixture(scope="module")
def s3_pack(tmp_path_factory: pytest.TempPathFactory) -> Pack:
    root = tmp_path_factory.mktemp("s3-pack")
    assert main(["pack", "tiny", "--family", "s3", str(root), "--seed", "5"]) == 0
    return Pack.open(root)


def test_the_pack_is_written_in_its_layout_and_opens_as_s3(s3_pack: Pack) -> None:
    assert s3_pack.family.name == "s3"
    for name in ("LLM/config.json", "LLM/tokenizer.json", "s3gen.safetensors", "s3gen.json", "voices.json"):
        assert (s3_pack.root / name).is_file(), name
    assert s3_pack.voices_file == s3_pack.root / "voices.json"
    codec = S3GenCodec.from_pack(s3_pack.root)
    assert codec.config == TINY and codec.sample_rate == 24000 and codec.samples_per_token == 960
    voice = S3Voice.load(s3_pack.root / "voices" / "default.safetensors", TINY.flow)
    assert voice.prompt_tokens.numel() == 50


def test_the_tokenizer_has_every_speech_token_and_the_markers(s3_pack: Pack) -> None:
    tokenizer = AutoTokenizer.from_pretrained(s3_pack.llm_dir)
    table = TokenTable.from_tokenizer(tokenizer, grammar=s3.GRAMMAR)
    assert table.num_semantic == 6561 and table.num_global == 0
    ids = tokenizer("<|speech_0|><|speech_6560|><|end_speech|>", add_special_tokens=False)["input_ids"]
    kinds, indices = table.classify(ids)
    assert kinds.tolist() == [TokenKind.SEMANTIC, TokenKind.SEMANTIC, TokenKind.END_SEMANTIC]
    assert indices[:2].tolist() == [0, 6560]
    prompt = s3_prompt("Hello there.")
    assert tokenizer.decode(tokenizer(prompt, add_special_tokens=False)["input_ids"]) == prompt
    assert prompt.endswith("<|end_content|><|start_speech|>")


def test_a_spark_voice_sent_to_an_s3_generator_is_refused_naming_it() -> None:
    request = generator_pb2.GenerateRequest(text="hi", global_tokens=generator_pb2.GlobalTokens(ids=[0] * 32))
    with pytest.raises(ValueError, match=r"global_tokens is not accepted.*s3 family"):
        parse_generate_request(request, max_text_chars=100, max_tokens=100, num_global=0, family=s3.FAMILY)
    plain = parse_generate_request(
        generator_pb2.GenerateRequest(text="hi"),
        max_text_chars=100,
        max_tokens=100,
        num_global=0,
        family=s3.FAMILY,
    )
    assert plain.global_ids is None and plain.style is None


def test_the_packs_voice_registry_lists_its_voice_at_24_khz(s3_pack: Pack) -> None:
    assert s3_pack.voices_file is not None
    registry = VoiceRegistry.from_file(s3_pack.voices_file)
    voice = registry.get("")
    assert voice is not None and voice.family.name == "s3"
    prompt = voice.parts.s3_prompt
    assert prompt is not None and len(prompt.prompt_tokens) == 50 and len(prompt.xvector) == 192
    assert len(prompt.prompt_mel_f32) == 4 * 100 * 80
    proto = voice.to_proto()
    assert (proto.family, proto.sample_rate, proto.controllable) == ("s3", 24000, False)


def test_bad_s3_registry_entries_are_refused_naming_them(tmp_path: Path, s3_pack: Pack) -> None:
    registry = tmp_path / "voices.json"
    registry.write_text(json.dumps({"voices": [{"id": "x", "family": "s3"}]}))
    with pytest.raises(ValueError, match="voice 'x': an s3 voice needs a conditioning file"):
        VoiceRegistry.from_file(registry)
    registry.write_text(json.dumps({"voices": [{"id": "x", "family": "opera"}]}))
    with pytest.raises(ValueError, match="voice 'x': family must be one of ") as info:
        VoiceRegistry.from_file(registry)
    assert all(family in str(info.value) for family in FAMILIES)
    with pytest.raises(ValueError, match="lacks prompt_tokens, prompt_mel, xvector"):
        s3.read_s3_prompt(s3_pack.root / "s3gen.safetensors")
