"""`voxserve pack random`: the tiny default and a pack with Spark-TTS-0.5B's real dimensions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from voxserve.families.registry import FAMILIES
from voxserve.random_packs.tiny_bicodec import FULL_BICODEC_CONFIG
from voxserve.random_packs.tiny_llm import SPARK_0_5B_LLM
from voxserve.random_packs.writer import PACK_WRITERS, SPEAKER_NAME_WRITERS, write_random_pack
from voxserve.vocoder.codecs.bicodec import BiCodecConfig, checkpoint_shapes


def test_full_size_bicodec_config_is_the_published_one() -> None:
    assert BiCodecConfig.from_dict(FULL_BICODEC_CONFIG) == BiCodecConfig.full_size()


def test_full_size_llm_has_the_spark_dimensions() -> None:
    # specs/spark-llm.md: hidden 896, 24 layers, 14 heads, 2 KV heads, FFN 4864, vocabulary 166000.
    size = SPARK_0_5B_LLM
    dims = (size.hidden_size, size.num_layers, size.num_attention_heads, size.num_kv_heads)
    assert dims == (896, 24, 14, 2)
    assert (size.intermediate_size, size.vocab_size) == (4864, 166000)
    assert size.hidden_size // size.num_attention_heads == 64  # an attention head size vLLM accepts


def test_unknown_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size 'huge' is unknown"):
        write_random_pack(tmp_path, "huge")


def test_every_family_has_a_pack_writer() -> None:
    assert set(PACK_WRITERS) == set(FAMILIES)
    assert set(SPEAKER_NAME_WRITERS) <= set(FAMILIES)


def test_unknown_family_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="family 'bark' is unknown; families: "):
        write_random_pack(tmp_path, "tiny", family="bark")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("family", ["s3", "chatterbox"])
def test_speaker_names_are_refused_outside_spark(tmp_path: Path, family: str) -> None:
    with pytest.raises(
        ValueError, match=f"^speakers: only spark packs have a speaker-name variant, not {family}$"
    ):
        write_random_pack(tmp_path / "pack", "tiny", family=family, speakers=True)
    assert not (tmp_path / "pack").exists()


@pytest.mark.slow
def test_full_size_pack_is_written_in_the_upstream_layout(tmp_path: Path) -> None:
    pack = write_random_pack(tmp_path / "full", "full", seed=1)
    config = json.loads((pack.llm_dir / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (896, 24, 166000)
    assert config["torch_dtype"] == "bfloat16" and config["tie_word_embeddings"]
    with safe_open(str(pack.llm_dir / "model.safetensors"), "pt") as f:
        assert f.get_slice("model.embed_tokens.weight").get_shape() == [166000, 896]
        assert f.get_slice("model.layers.23.mlp.down_proj.weight").get_shape() == [896, 4864]
        assert f.get_slice("model.layers.0.self_attn.k_proj.weight").get_shape() == [128, 896]
    expected = checkpoint_shapes(BiCodecConfig.full_size())
    with safe_open(str(pack.bicodec_dir / "model.safetensors"), "pt") as f:
        for name, shape in expected.items():
            assert tuple(f.get_slice(name).get_shape()) == shape, name
