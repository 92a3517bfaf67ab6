from pathlib import Path

import pytest

from voxserve.random_packs.tiny_llm import write_tiny_llm

TINY_LLM_SEED = 1234


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Spark-layout ``LLM/`` directory, written once per session; treat it as read-only."""
    llm_dir = tmp_path_factory.mktemp("tiny_pack") / "LLM"
    write_tiny_llm(llm_dir, seed=TINY_LLM_SEED)
    return llm_dir
