"""The engine-free parts of `TokenGenerator`: frame assembly, budgets and prompt choice."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from types import SimpleNamespace

import numpy as np
import pytest

from voxserve.common.status import InvalidArgument
from voxserve.families import orpheus, spark
from voxserve.families.speakers import SpeakerSet
from voxserve.generator.engine import TokenGenerator
from voxserve.generator.engine_requests import EngineRequests
from voxserve.generator.frames import FrameAssembler
from voxserve.generator.generate_args import GenerateArgs, Reference, Sampling, Speaker, Style
from voxserve.generator.token_table import TokenTable
from voxserve.generator.voice_prompts import OrpheusVoicePrompts, PromptFactory, SparkVoicePrompts

ORPHEUS_AUDIO_TOKENS = orpheus.AUDIO_TOKEN_OFFSET + orpheus.CODES_PER_FRAME * orpheus.CODEBOOK_SIZE


def orpheus_table() -> TokenTable:
    vocab = {f"<custom_token_{n}>": 100 + n for n in range(ORPHEUS_AUDIO_TOKENS)}
    vocab["<|eot_id|>"] = 5
    return TokenTable.from_vocab(vocab, grammar=orpheus.GRAMMAR)


def spark_table() -> TokenTable:
    vocab = {f"<|bicodec_global_{n}|>": n for n in range(4096)}
    vocab |= {f"<|bicodec_semantic_{n}|>": 4096 + n for n in range(8192)}
    for i, marker in enumerate(spark.GRAMMAR.markers.values()):
        vocab[marker] = 20000 + i
    return TokenTable.from_vocab(vocab, grammar=spark.GRAMMAR)


def generator(table: TokenTable, speakers: SpeakerSet | None = None) -> TokenGenerator:
    family = orpheus.FAMILY if table.family == "orpheus" else spark.FAMILY
    prompts: PromptFactory = OrpheusVoicePrompts if family is orpheus.FAMILY else SparkVoicePrompts
    return TokenGenerator(
        None, None, table, prompts(table, speakers), family=family, max_model_len=1000, max_tokens=500
    )


def prompt_of(source: TokenGenerator, text: str, **voice: object) -> tuple[str | None, str | None]:
    """(the whole prompt, or None) and (the head the model writes its globals after, or None)."""
    choice = source.prompts.choose(GenerateArgs(text, **voice))  # type: ignore[arg-type]
    return choice.prompt, choice.head


def test_whole_frames_come_out_whatever_the_steps() -> None:
    frames = FrameAssembler(7, 4096)
    indices = [p * 4096 + (10 * f + p) for f in range(3) for p in range(7)]
    out = frames.add(np.array(indices[:5])) + frames.add(np.array(indices[5:16]))
    assert out == [10 * 0 + p for p in range(7)] + [10 + p for p in range(7)]
    assert frames.pending == 2
    assert frames.add(np.array(indices[16:])) == [20 + p for p in range(7)] and frames.pending == 0


def test_a_token_out_of_its_place_is_dropped_without_shifting_the_rest() -> None:
    frames = FrameAssembler(7, 4096)
    wrong = 3 * 4096 + 1  # position 3 where position 1 is due
    indices = [0 * 4096 + 1, wrong, *(p * 4096 + p for p in range(1, 7))]
    assert frames.add(np.array(indices)) == [1, 1, 2, 3, 4, 5, 6] and frames.dropped == 1


def test_single_code_families_pass_straight_through() -> None:
    assert FrameAssembler(1, 6561).add(np.array([5, 9, 4095])) == [5, 9, 4095]


def test_orpheus_budgets_are_whole_frames() -> None:
    orpheus = generator(orpheus_table())
    assert orpheus.frame_layout is not None and orpheus.frame_layout.first_id == 110
    assert orpheus.frame_layout.codes == 4096 and orpheus.frame_layout.positions == 7
    assert orpheus.frame_layout.end_ids == (orpheus.table.end_semantic_id, 5)
    assert orpheus.budget.tokens(20, 30) == 14
    assert orpheus.budget.tokens(None, 30) == 497  # 500 rounded down to 71 frames
    with pytest.raises(InvalidArgument, match=r"max_tokens=6 is less than one orpheus frame \(7 tokens\)"):
        orpheus.budget.tokens(6, 30)
    assert generator(spark_table()).budget.tokens(20, 30) == 20
    assert generator(spark_table()).frame_layout is None


def test_budgets_fit_the_model_after_the_prompt_and_its_markers() -> None:
    spark = generator(spark_table())
    assert spark.budget.tokens(None, 900) == 98
    assert spark.budget.tokens(98, 900) == 98
    with pytest.raises(
        InvalidArgument,
        match=r"max_tokens=99 does not fit: the prompt takes 900 of the "
        r"model's 1000 tokens, leaving 98",
    ):
        spark.budget.tokens(99, 900)
    with pytest.raises(
        InvalidArgument, match="text is too long: its prompt takes 998 of the model's 1000 tokens"
    ):
        spark.budget.tokens(None, 998)


def test_orpheus_audio_tokens_must_have_consecutive_ids() -> None:
    vocab = {f"<custom_token_{n}>": 100 + n + (n > 5000) for n in range(ORPHEUS_AUDIO_TOKENS)}
    vocab["<|eot_id|>"] = 5
    with pytest.raises(ValueError, match="consecutive ids"):
        generator(TokenTable.from_vocab(vocab, grammar=orpheus.GRAMMAR))


def test_orpheus_prompts_name_the_speaker_and_default_to_the_packs_first() -> None:
    orpheus = generator(orpheus_table(), SpeakerSet(("tara", "leo")))
    prompt, head = prompt_of(orpheus, "Hi.", speaker=Speaker("leo"))
    assert head is None and prompt is not None and "leo: Hi." in prompt
    assert "tara: Hi." in (prompt_of(orpheus, "Hi.")[0] or "")
    with pytest.raises(ValueError, match="'bob' is not one of this pack's speakers"):
        prompt_of(orpheus, "Hi.", speaker=Speaker("bob"))
    with pytest.raises(InvalidArgument, match="speaker is required"):
        prompt_of(generator(orpheus_table()), "Hi.")


def test_spark_speaker_prompts_generate_or_prefill_the_globals() -> None:
    spark = generator(spark_table(), SpeakerSet(("diya", "kabir")))
    prompt, head = prompt_of(spark, "नमस्ते <laugh>", speaker=Speaker("kabir"))
    assert prompt is None and head == "<|task_tts|><|start_content|>kabir: नमस्ते <laugh><|end_content|>"
    choice = spark.prompts.choose(GenerateArgs("नमस्ते", speaker=Speaker("kabir", tuple(range(32)))))
    assert choice.head is None and choice.prompt is not None and choice.global_ids == tuple(range(32))
    assert choice.prompt.startswith(
        "<|task_tts|><|start_content|>kabir: नमस्ते<|end_content|><|start_global_token|>"
    )
    assert prompt_of(spark, "x")[1] == "<|task_tts|><|start_content|>diya: x<|end_content|>"
    with pytest.raises(InvalidArgument, match="style is not accepted: this pack names its speakers"):
        prompt_of(spark, "x", style=Style())
    with pytest.raises(InvalidArgument, match="this pack has no named speakers"):
        prompt_of(generator(spark_table()), "x", speaker=Speaker("diya"))


def test_spark_fixed_globals_make_the_whole_prompt_and_a_style_the_head() -> None:
    spark = generator(spark_table())
    choice = spark.prompts.choose(GenerateArgs("x", global_ids=tuple(range(32))))
    assert choice.head is None and choice.global_ids == tuple(range(32))
    assert choice.prompt is not None and choice.prompt.endswith("<|bicodec_global_31|><|end_global_token|>")
    prompt, head = prompt_of(spark, "x", style=Style("male", 0, 4))
    assert prompt is None and head is not None and head.endswith("<|speed_label_4|><|end_style_label|>")
    assert spark.prompts.after_globals(head, range(32)) == head + spark.prompts.builder.global_block(
        range(32)
    )


class CharTokenizer:
    """One id per character: enough to count a prompt."""

    def __call__(self, text: str, add_special_tokens: bool) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) % 100 for c in text]}


class ScriptedEngine:
    """Answers the globals phase with `globals_` and every other request with `steps`."""

    def __init__(self, steps: list[list[int]], globals_: list[int] | None = None):
        self.steps = steps
        self.globals = globals_ or []
        self.params: list[object] = []

    async def generate(self, prompt: dict, params: object, request_id: str) -> AsyncIterator[object]:
        self.params.append(params)
        steps = [self.globals] if "-g-" in request_id else self.steps
        for n, ids in enumerate(steps):
            finished = n == len(steps) - 1
            completion = SimpleNamespace(token_ids=ids, finish_reason="stop" if finished else None)
            yield SimpleNamespace(outputs=[completion], finished=finished, metrics=None)

    async def abort(self, request_id: str) -> None:
        raise AssertionError("every request finishes")


def scripted(table: TokenTable, engine: ScriptedEngine, speakers: SpeakerSet | None = None) -> TokenGenerator:
    source = generator(table, speakers)
    source.tokenizer = CharTokenizer()
    source.llm = engine
    source.requests = EngineRequests(engine)
    return source


async def test_orpheus_streams_whole_frames_of_codes() -> None:
    table = orpheus_table()
    frame = [table.semantic_token_id(p * 4096 + 10 * p) for p in range(7)]
    engine = ScriptedEngine([frame[:3], frame[3:] + frame[:2], frame[2:], [table.end_semantic_id]])
    source = scripted(table, engine, SpeakerSet(("tara",)))
    frames = [f async for f in source.generate(GenerateArgs("Hi."), "r")]
    codes = [10 * p for p in range(7)]
    assert [f.semantic_ids for f in frames[:-1]] == [codes, codes]
    assert all(not f.global_ids for f in frames)
    result = frames[-1].result
    assert result is not None and (result.semantic_tokens, result.finish_reason) == (14, "stop")
    assert engine.params[0].extra_args == source.frame_layout.to_args()  # type: ignore[union-attr, attr-defined]


async def test_spark_writes_its_globals_first_then_continues_with_them() -> None:
    table = spark_table()
    globals_ = list(range(100, 132))
    engine = ScriptedEngine([[table.semantic_token_id(5), table.semantic_token_id(6)]], globals_)
    source = scripted(table, engine)
    frames = [f async for f in source.generate(GenerateArgs("Hi.", style=Style("male")), "r")]
    assert frames[0].global_ids == globals_  # global token n has id n in this table
    assert frames[1].semantic_ids == [5, 6]
    assert frames[-1].result is not None and frames[-1].result.semantic_tokens == 2
    globals_params, semantic_params = engine.params
    assert globals_params.max_tokens == globals_params.min_tokens == 32  # type: ignore[attr-defined]
    assert semantic_params.stop_token_ids == [table.end_semantic_id, table.eos_id]  # type: ignore[attr-defined]


async def test_a_prompt_error_is_the_callers() -> None:
    source = scripted(spark_table(), ScriptedEngine([]))
    with pytest.raises(InvalidArgument, match="special-token markup"):
        await anext(source.generate(GenerateArgs("<|im_end|>", global_ids=tuple(range(32))), "r"))


REFERENCE = Reference("Ref.", (7, 8, 9))


def test_spark_fixed_globals_with_a_reference_make_the_cloning_prompt() -> None:
    spark = generator(spark_table())
    choice = spark.prompts.choose(GenerateArgs("x", global_ids=tuple(range(32)), reference=REFERENCE))
    builder = spark.prompts.builder
    assert choice.head is None and choice.global_ids == tuple(range(32))
    assert choice.prompt == builder.cloning("x", range(32), "Ref.", [7, 8, 9])
    with pytest.raises(InvalidArgument, match="a reference is accepted only with the voice's global ids"):
        prompt_of(spark, "x", reference=REFERENCE)
    with pytest.raises(
        ValueError, match=r"reference_semantic_ids\[0\]=8192 is not an integer in \[0, 8192\)"
    ):
        prompt_of(spark, "x", global_ids=tuple(range(32)), reference=Reference("Ref.", (8192,)))


async def test_a_reference_lengthens_the_prompt_and_never_reaches_the_frames() -> None:
    table = spark_table()
    engine = ScriptedEngine(
        [[table.semantic_token_id(5)], [table.semantic_token_id(6), table.end_semantic_id]]
    )
    source = scripted(table, engine)
    globals_ = tuple(range(32))
    plain = [f async for f in source.generate(GenerateArgs("Hi.", global_ids=globals_), "r")]
    cloned = [
        f async for f in source.generate(GenerateArgs("Hi.", global_ids=globals_, reference=REFERENCE), "r")
    ]
    for frames in (plain, cloned):
        assert frames[0].global_ids == list(globals_)
        assert [f.semantic_ids for f in frames[1:-1]] == [[5], [6]]
    plain_result, cloned_result = plain[-1].result, cloned[-1].result
    assert plain_result is not None and cloned_result is not None
    assert cloned_result.semantic_tokens == 2
    # One id per character: the cloning prompt's extra text, markers and semantic tokens.
    extra = "Ref." + "<|start_semantic_token|>" + "".join(f"<|bicodec_semantic_{n}|>" for n in (7, 8, 9))
    assert cloned_result.prompt_tokens == plain_result.prompt_tokens + len(extra)


async def test_a_reference_too_long_for_the_model_is_the_callers() -> None:
    source = scripted(spark_table(), ScriptedEngine([]))
    long = Reference("Ref.", (1,) * 40)  # 40 * len("<|bicodec_semantic_1|>") characters > 1000
    args = GenerateArgs("Hi.", global_ids=tuple(range(32)), reference=long)
    with pytest.raises(
        InvalidArgument,
        match=r"^text with the voice's reference \(4 characters and 40 semantic ids\) is too long: "
        r"its prompt takes \d+ of the model's 1000 tokens$",
    ):
        await anext(source.generate(args, "r"))
    sampled = dataclasses.replace(args, sampling=Sampling(max_tokens=10))
    with pytest.raises(
        InvalidArgument,
        match=r"^sampling.max_tokens=10 does not fit: the prompt \(it holds the text with the voice's "
        r"reference \(4 characters and 40 semantic ids\)\) takes \d+ of the model's 1000 tokens, leaving 0$",
    ):
        await anext(source.generate(sampled, "r"))
