"""Registers the T3 model with vLLM. vLLM calls `register` in every process it starts (the
`vllm.general_plugins` entry point in pyproject.toml), so the engine's workers know the model too."""

from __future__ import annotations

from voxserve.generator.t3.model_dir import ARCHITECTURE


def register() -> None:
    from vllm import ModelRegistry

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        # By name, so that vLLM imports the model only where it builds it.
        ModelRegistry.register_model(ARCHITECTURE, "voxserve.generator.t3.model:T3ForSpeechTokens")
