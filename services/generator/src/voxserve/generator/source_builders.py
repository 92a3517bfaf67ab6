"""The one place a family's name picks generator code: each family's token source and how it is
built from a pack. A token LM family also names its prompt format (`voice_prompts`)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from voxserve.common.logging import get_logger
from voxserve.families import chatterbox, orpheus, s3, spark
from voxserve.families.family import Family
from voxserve.families.pack import Pack
from voxserve.families.speakers import SpeakerSet
from voxserve.generator.config import GeneratorConfig, VllmEnvironment
from voxserve.generator.engine import TokenGenerator
from voxserve.generator.t3.config import CHECKPOINT_FILE as T3_CHECKPOINT
from voxserve.generator.t3.config import T3Config
from voxserve.generator.t3.generator import T3Generator
from voxserve.generator.token_source import TokenSource
from voxserve.generator.token_table import TokenTable
from voxserve.generator.voice_prompts import (
    OrpheusVoicePrompts,
    PromptFactory,
    S3VoicePrompts,
    SparkVoicePrompts,
)

log = get_logger(__name__)

TokenSourceBuilder = Callable[[GeneratorConfig, VllmEnvironment, Pack], TokenSource]
"""Builds a pack's token source on a fresh vLLM engine (the environment already applied)."""


def engine_args(config: GeneratorConfig, vllm: VllmEnvironment, model: Path, **extra: Any) -> Any:
    from vllm.engine.arg_utils import AsyncEngineArgs

    return AsyncEngineArgs(
        model=str(model),
        dtype=config.dtype,  # type: ignore[arg-type]  # vLLM validates the name
        max_model_len=config.max_model_len,
        max_num_seqs=config.max_num_seqs,
        gpu_memory_utilization=config.gpu_memory_utilization,
        enforce_eager=config.enforce_eager,
        distributed_executor_backend=vllm.backend,
        disable_log_stats=False,
        seed=0,
        **extra,
    )


@dataclass(frozen=True)
class TokenLmBuilder:
    """A Hugging Face LLM in the pack's `LLM/` writing the family's audio tokens."""

    prompts: PromptFactory

    def __call__(self, config: GeneratorConfig, vllm: VllmEnvironment, pack: Pack) -> TokenGenerator:
        from transformers import AutoTokenizer
        from vllm.v1.engine.async_llm import AsyncLLM

        started = time.monotonic()
        family = pack.family
        if family.grammar is None:
            raise ValueError(f"the {family.name} family has no token grammar for a token LM")
        tokenizer = AutoTokenizer.from_pretrained(pack.llm_dir)
        table = TokenTable.from_tokenizer(tokenizer, grammar=family.grammar)
        speakers = SpeakerSet.from_pack(pack.root)
        processors: dict[str, Any] = {}
        if family.codes_per_token > 1:
            from voxserve.generator.frame_positions import FramePositions

            processors["logits_processors"] = [FramePositions]
        llm = AsyncLLM.from_engine_args(engine_args(config, vllm, pack.llm_dir, **processors))
        log.info(
            "engine ready",
            pack=str(pack.root),
            family=family.name,
            speakers=len(speakers.names) if speakers else 0,
            seconds=round(time.monotonic() - started, 2),
            cpu=vllm.on_cpu,
        )
        return TokenGenerator(
            llm,
            tokenizer,
            table,
            self.prompts(table, speakers),
            family=family,
            max_model_len=config.max_model_len,
            max_tokens=config.max_tokens,
        )


def build_t3(config: GeneratorConfig, vllm: VllmEnvironment, pack: Pack) -> T3Generator:
    """T3 in vLLM from the pack's `t3_cfg.safetensors` (see `t3.model`)."""
    from vllm.v1.engine.async_llm import AsyncLLM

    from voxserve.generator.t3.conditioning import T3Conditioner
    from voxserve.generator.t3.model_dir import t3_engine_options, write_model_dir
    from voxserve.generator.t3.text import T3Tokenizer
    from voxserve.generator.t3.voice import read_t3_voice

    started = time.monotonic()
    family = pack.family
    t3 = T3Config.of_pack(pack.root)
    checkpoint = pack.root / T3_CHECKPOINT
    # Reads only the tensors that build prompts, after checking every name and shape (before
    # vLLM starts, so a wrong checkpoint fails at once with the names that are wrong).
    conditioner = T3Conditioner.load(checkpoint, t3)
    assert family.default_voice_file is not None
    default_voice = read_t3_voice(pack.root / family.default_voice_file)
    model_dir = write_model_dir(Path(tempfile.mkdtemp(prefix="voxserve-t3-")), checkpoint, t3)
    llm = AsyncLLM.from_engine_args(engine_args(config, vllm, model_dir, **t3_engine_options()))
    log.info(
        "engine ready", pack=str(pack.root), family=family.name, seconds=round(time.monotonic() - started, 2)
    )
    return T3Generator(
        llm,
        conditioner,
        T3Tokenizer.from_file(pack.root / "tokenizer.json", t3),
        default_voice,
        t3,
        family=family,
        max_model_len=config.max_model_len,
        max_tokens=config.max_tokens,
    )


TOKEN_SOURCES: Mapping[str, TokenSourceBuilder] = MappingProxyType(
    {
        spark.FAMILY.name: TokenLmBuilder(SparkVoicePrompts),
        s3.FAMILY.name: TokenLmBuilder(S3VoicePrompts),
        orpheus.FAMILY.name: TokenLmBuilder(OrpheusVoicePrompts),
        chatterbox.FAMILY.name: build_t3,
    }
)


def token_source_builder(family: Family) -> TokenSourceBuilder:
    try:
        return TOKEN_SOURCES[family.name]
    except KeyError:
        raise ValueError(
            f"the generator has no token source for the {family.name} family; it serves "
            f"{', '.join(TOKEN_SOURCES)}"
        ) from None
