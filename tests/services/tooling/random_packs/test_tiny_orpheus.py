"""The tiny orpheus pack: Orpheus's tokenizer layout, a Llama config, SNAC, its speakers and voices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoTokenizer

from voxserve.families import orpheus
from voxserve.families.family import TokenKind
from voxserve.families.pack import Pack
from voxserve.families.speakers import SpeakerSet
from voxserve.gateway.voices import VoiceRegistry
from voxserve.generator.prompts import orpheus_prompt
from voxserve.generator.token_table import MissingTokensError, TokenTable
from voxserve.random_packs.tiny_orpheus import ORPHEUS_VOICES
from voxserve.random_packs.writer import write_random_pack
from voxserve.vocoder.codecs.snac.codec import SnacCodec


@pytest.fixture(scope="module")
def orpheus_pack(tmp_path_factory: pytest.TempPathFactory) -> Pack:
    return write_random_pack(tmp_path_factory.mktemp("orpheus"), "tiny", seed=5, family="orpheus")


def test_the_pack_is_recognised_as_orpheus(orpheus_pack: Pack) -> None:
    assert orpheus_pack.family.name == "orpheus"
    assert Pack.open(orpheus_pack.root).family.name == "orpheus"
    (orpheus_pack.root / "SNAC" / "config.json").rename(orpheus_pack.root / "config.moved")
    try:
        with pytest.raises(FileNotFoundError, match=r"SNAC/config\.json"):
            Pack.open(orpheus_pack.root)
    finally:
        (orpheus_pack.root / "config.moved").rename(orpheus_pack.root / "SNAC" / "config.json")


def test_the_lm_is_a_llama_with_tied_embeddings(orpheus_pack: Pack) -> None:
    config = AutoConfig.from_pretrained(orpheus_pack.llm_dir)
    assert config.model_type == "llama" and config.architectures == ["LlamaForCausalLM"]
    assert config.tie_word_embeddings and not config.attention_bias
    tokenizer = AutoTokenizer.from_pretrained(orpheus_pack.llm_dir)
    assert config.vocab_size >= len(tokenizer)


def test_audio_token_ids_follow_orpheus_numbering(orpheus_pack: Pack) -> None:
    tokenizer = AutoTokenizer.from_pretrained(orpheus_pack.llm_dir)
    vocab = tokenizer.get_vocab()
    table = TokenTable.from_tokenizer(tokenizer, grammar=orpheus.GRAMMAR)
    assert table.family == "orpheus" and table.num_semantic == 7 * 4096 and table.num_global == 0
    base = vocab["<custom_token_0>"]
    # LLM id = base + 10 + position * 4096 + code, as upstream (base 128256 in the real tokenizer).
    for position, code in ((0, 0), (1, 5), (6, 4095)):
        token_id = vocab[f"<custom_token_{10 + position * 4096 + code}>"]
        assert token_id == base + 10 + position * 4096 + code
        assert table.kind_of(token_id) == TokenKind.SEMANTIC
        assert divmod(table.index_of(token_id), 4096) == (position, code)
    assert table.kind_of(vocab["<custom_token_9>"]) == TokenKind.OTHER
    assert table.start_semantic_id == vocab["<custom_token_1>"]
    assert table.end_semantic_id == vocab["<custom_token_2>"]
    assert table.eos_id == vocab["<|eot_id|>"]


def test_a_tokenizer_missing_one_position_is_refused() -> None:
    vocab = {f"<custom_token_{n}>": n for n in range(10 + 6 * 4096)}
    vocab["<|eot_id|>"] = len(vocab)
    with pytest.raises(MissingTokensError, match=r"has 24576 <custom_token_N> audio tokens.*28672"):
        TokenTable.from_vocab(vocab, grammar=orpheus.GRAMMAR)


def test_the_prompt_encodes_to_upstreams_marker_sequence(orpheus_pack: Pack) -> None:
    tokenizer = AutoTokenizer.from_pretrained(orpheus_pack.llm_dir)
    vocab = tokenizer.get_vocab()
    ids = tokenizer(orpheus_prompt("Hi <laugh> there.", "tara"), add_special_tokens=False)["input_ids"]
    marker = [vocab[t] for t in ("<custom_token_3>", "<|begin_of_text|>")]
    tail = [vocab[t] for t in ("<|eot_id|>", "<custom_token_4>", "<custom_token_5>", "<custom_token_1>")]
    assert ids[:2] == marker and ids[-4:] == tail
    text = tokenizer.decode(ids[2:-4])
    assert text == "tara: Hi <laugh> there."


def test_snac_loads_from_the_pack_at_24_khz_with_2048_samples_a_frame(orpheus_pack: Pack) -> None:
    codec = SnacCodec.from_pack(orpheus_pack.root)
    assert codec.sample_rate == 24000 and codec.samples_per_token == 2048
    frames = torch.randint(0, 4096, (1, 3, 7))
    assert codec.decode(frames).shape == (1, 3 * 2048)


def test_speakers_and_voices(orpheus_pack: Pack) -> None:
    speakers = SpeakerSet.from_pack(orpheus_pack.root)
    assert speakers is not None and speakers.names == ORPHEUS_VOICES
    assert orpheus_pack.voices_file is not None
    registry = VoiceRegistry.from_file(orpheus_pack.voices_file)
    assert registry.default.parts.speaker == "tara"
    assert {v.id for v in registry} == {"default", *ORPHEUS_VOICES}
    assert all(v.family.name == "orpheus" and v.to_proto().sample_rate == 24000 for v in registry)


def test_the_same_seed_writes_the_same_pack(orpheus_pack: Pack, tmp_path: Path) -> None:
    again = write_random_pack(tmp_path, "tiny", seed=5, family="orpheus")
    for name in ("LLM/model.safetensors", "LLM/tokenizer.json", "SNAC/pytorch_model.bin", "voices.json"):
        assert (again.root / name).read_bytes() == (orpheus_pack.root / name).read_bytes(), name
    assert json.loads((again.root / "LLM/config.json").read_text())["model_type"] == "llama"


def test_only_spark_has_a_speaker_variant(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only spark packs"):
        write_random_pack(tmp_path, "tiny", family="orpheus", speakers=True)
