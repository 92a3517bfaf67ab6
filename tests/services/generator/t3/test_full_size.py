"""The published T3 size ("Llama_520M", float32) loads into vLLM from an upstream-named checkpoint
and decodes. Slow: a 2 GB checkpoint and a 520M-parameter engine on the CPU."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from voxserve.generator.t3.conditioning import T3Conditioner
from voxserve.generator.t3.config import FULL
from voxserve.generator.t3.guidance import Guidance
from voxserve.generator.t3.model_dir import t3_engine_options, write_model_dir
from voxserve.generator.t3.text import T3Tokenizer
from voxserve.random_packs.t3_checkpoint import write_random_t3
from voxserve.random_packs.t3_tokenizer import write_tokenizer
from voxserve.random_packs.voices import random_t3_voice


@pytest.mark.slow
def test_the_full_size_t3_loads_and_decodes_speech_ids(tmp_path: Path) -> None:
    checkpoint = tmp_path / "t3_cfg.safetensors"
    write_random_t3(checkpoint, FULL, seed=1)
    write_tokenizer(tmp_path / "tokenizer.json")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch modules vLLM's LLM imports
        from vllm import LLM, SamplingParams

        llm = LLM(
            model=str(write_model_dir(tmp_path / "model", checkpoint, FULL)),
            dtype="float32",
            max_model_len=512,
            max_num_seqs=2,
            enforce_eager=True,
            seed=0,
            **t3_engine_options(),
        )
    try:
        text_ids = T3Tokenizer.from_file(tmp_path / "tokenizer.json").prompt_ids("Full size.")
        rows = T3Conditioner.load(checkpoint, FULL).prompt(random_t3_voice(FULL, 150, seed=3), text_ids, 0.5)
        params = SamplingParams(
            temperature=0.8,
            min_p=0.05,
            max_tokens=8,
            ignore_eos=True,
            seed=1,
            extra_args=Guidance(0.5, 1.2, 6561).as_args(),
        )
        tokens = llm.generate([{"prompt_embeds": rows}], params, use_tqdm=False)[0].outputs[0].token_ids
        assert len(tokens) == 8 and all(0 <= t < FULL.speech_vocab for t in tokens)
    finally:
        client = llm.llm_engine.engine_core
        client.shutdown()
        client.ctx.destroy(linger=0)
