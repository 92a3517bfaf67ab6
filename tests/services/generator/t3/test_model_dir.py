"""The directory vLLM loads T3 from, and the plugin that registers the model."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

from voxserve.generator.t3.config import CHECKPOINT_FILE, FULL, TINY
from voxserve.generator.t3.model_dir import ARCHITECTURE, max_positions, speech_origin, write_model_dir


def test_the_config_names_the_architecture_and_carries_the_t3_sizes(tmp_path: Path) -> None:
    checkpoint = tmp_path / "pack" / CHECKPOINT_FILE
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    directory = write_model_dir(tmp_path / "model", checkpoint, TINY)
    config = json.loads((directory / "config.json").read_text())
    assert config["architectures"] == [ARCHITECTURE]
    assert config["vocab_size"] == 2 * TINY.speech_vocab  # both branches' logits
    assert len(config["mrope_section"]) == 3  # three position streams
    assert config["t3"]["hidden"] == TINY.hidden and config["t3"]["layers"] == TINY.layers
    assert (directory / CHECKPOINT_FILE).read_bytes() == b"weights"
    # Writing again (a restart) replaces the link.
    write_model_dir(tmp_path / "model", checkpoint, TINY)
    assert (directory / CHECKPOINT_FILE).resolve() == checkpoint.resolve()


def test_every_shifted_position_fits_the_rotary_table() -> None:
    """The longest prompt starts at a position >= 0, and a text row's index never equals its
    rotary position (how the model tells text rows apart)."""
    for config in (TINY, FULL):
        origin = speech_origin(config)
        longest_prompt = config.cond_rows + config.text_positions + 2
        assert origin + 1 - longest_prompt >= 0
        assert origin > config.text_positions + 1
        assert max_positions(config) == origin + config.speech_positions


def test_the_plugin_is_an_entry_point_that_registers_the_model() -> None:
    from vllm import ModelRegistry

    plugins = importlib.metadata.entry_points(group="vllm.general_plugins")
    ours = [p for p in plugins if p.value == "voxserve.generator.t3.plugin:register"]
    assert len(ours) == 1
    ours[0].load()()
    assert ARCHITECTURE in ModelRegistry.get_supported_archs()
