from dataclasses import dataclass

import numpy as np
import pytest

from voxserve.families.spark import GLOBAL_TOKENS_PER_VOICE
from voxserve.generator.prompts import SparkPromptBuilder, orpheus_prompt

GLOBALS = [4095, 0, *range(100, 130)]
GLOBAL_BLOCK = (
    "<|start_global_token|><|bicodec_global_4095|><|bicodec_global_0|>"
    + "".join(f"<|bicodec_global_{n}|>" for n in range(100, 130))
    + "<|end_global_token|>"
)


@pytest.fixture
def builder() -> SparkPromptBuilder:
    return SparkPromptBuilder(num_global=4096, num_semantic=8192)


def test_fixed_voice(builder: SparkPromptBuilder) -> None:
    assert builder.fixed_voice("Hello, world.", GLOBALS) == (
        "<|task_tts|><|start_content|>Hello, world.<|end_content|>" + GLOBAL_BLOCK
    )


def test_cloning_is_upstreams_prompt_with_the_reference(builder: SparkPromptBuilder) -> None:
    # The transcript and the text are joined with no separator, as upstream's process_prompt.
    assert builder.cloning("Hello, world.", GLOBALS, "This is me.", [8191, 0, 42]) == (
        "<|task_tts|><|start_content|>This is me.Hello, world.<|end_content|>"
        + GLOBAL_BLOCK
        + "<|start_semantic_token|><|bicodec_semantic_8191|><|bicodec_semantic_0|><|bicodec_semantic_42|>"
    )
    reference_ids = np.arange(300, dtype=np.int64)
    cloning = builder.cloning("Hi.", GLOBALS, " said <laugh> ", reference_ids)
    without = builder.fixed_voice("Hi.", GLOBALS)
    assert cloning.startswith("<|task_tts|><|start_content|> said <laugh> Hi.<|end_content|>")
    assert cloning.split("<|end_content|>")[1].startswith(without.split("<|end_content|>")[1])
    assert cloning.count("<|bicodec_semantic_") == 300
    assert without.endswith("<|end_global_token|>") and "semantic" not in without


@pytest.mark.parametrize(
    ("text", "reference_text", "reference_ids", "match"),
    [
        ("Hi.", "", [1], "reference_text must not be empty"),
        ("Hi.", " \n ", [1], "reference_text must not be empty"),
        ("Hi.", "me <|im_end|>", [1], "reference_text must not contain special-token markup"),
        ("Hi.", "x<|bicodec_semantic_3|>", [1], "reference_text must not contain .*bicodec_semantic_3"),
        ("|> hi", "me <|im_end", [1], "reference_text joined to text must not contain .*'<\\|im_end\\|>'"),
        ("<|task_tts|>", "me", [1], "^text must not contain"),
        ("Hi.", "me", [], "reference_semantic_ids must not be empty"),
        ("Hi.", "me", [1, 8192], r"reference_semantic_ids\[1\]=8192 is not an integer in \[0, 8192\)"),
        ("Hi.", "me", [-1], r"reference_semantic_ids\[0\]=-1 "),
        ("Hi.", "me", [1, True], r"reference_semantic_ids\[1\]=True "),
        ("Hi.", "me", [2.0], r"reference_semantic_ids\[0\]=2\.0 "),
    ],
)
def test_the_reference_is_validated(
    builder: SparkPromptBuilder, text: str, reference_text: str, reference_ids: list, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        builder.cloning(text, GLOBALS, reference_text, reference_ids)


def test_cloning_checks_the_globals_too(builder: SparkPromptBuilder) -> None:
    with pytest.raises(ValueError, match=r"global_ids must hold exactly 32 ids, got 31"):
        builder.cloning("Hi.", GLOBALS[:-1], "me", [1])
    with pytest.raises(TypeError, match="reference_text must be a str"):
        builder.cloning("Hi.", GLOBALS, None, [1])  # type: ignore[arg-type]


def test_controllable(builder: SparkPromptBuilder) -> None:
    assert builder.controllable("नमस्ते दुनिया", "male", 0, 4) == (
        "<|task_controllable_tts|><|start_content|>नमस्ते दुनिया<|end_content|>"
        "<|start_style_label|><|gender_1|><|pitch_label_0|><|speed_label_4|><|end_style_label|>"
    )
    assert "<|gender_0|><|pitch_label_2|><|speed_label_3|>" in builder.controllable("Hi.", "female", 2, 3)


def test_controllable_with_globals_continues_the_controllable_prompt(builder: SparkPromptBuilder) -> None:
    prompt = builder.controllable_with_globals("Hi.", "female", 1, 2, np.array(GLOBALS, dtype=np.int64))
    assert prompt == builder.controllable("Hi.", "female", 1, 2) + GLOBAL_BLOCK


def test_text_is_kept_verbatim(builder: SparkPromptBuilder) -> None:
    text = '  It\'s <laugh> 4:15 — "quoted"\nnew line  '
    assert f"<|start_content|>{text}<|end_content|>" in builder.fixed_voice(text, GLOBALS)


@pytest.mark.parametrize(
    ("global_ids", "match"),
    [
        (GLOBALS[:-1], rf"global_ids must hold exactly {GLOBAL_TOKENS_PER_VOICE} ids, got 31"),
        ([*GLOBALS, 1], r"global_ids must hold exactly 32 ids, got 33"),
        ([], r"global_ids must hold exactly 32 ids, got 0"),
        ([*GLOBALS[:5], 4096, *GLOBALS[6:]], r"global_ids\[5\] = 4096 is not an integer in 0\.\.4095"),
        ([-1, *GLOBALS[1:]], r"global_ids\[0\] = -1 .*0\.\.4095"),
        ([True, *GLOBALS[1:]], r"global_ids\[0\] = True"),
        ([*GLOBALS[:-1], 2.0], r"global_ids\[31\] = 2\.0"),
    ],
)
def test_global_ids_are_validated(builder: SparkPromptBuilder, global_ids: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        builder.fixed_voice("Hi.", global_ids)
    with pytest.raises(ValueError, match=match):
        builder.controllable_with_globals("Hi.", "male", 2, 2, global_ids)


def test_global_range_follows_the_token_table() -> None:
    @dataclass
    class SmallTable:
        num_global: int = 16
        num_semantic: int = 8

    builder = SparkPromptBuilder.from_token_table(SmallTable())
    assert builder.fixed_voice("Hi.", [15] * 32).count("<|bicodec_global_15|>") == 32
    with pytest.raises(ValueError, match=r"0\.\.15"):
        builder.fixed_voice("Hi.", [16] * 32)
    assert builder.cloning("Hi.", [15] * 32, "Ref.", [7]).endswith("<|bicodec_semantic_7|>")
    with pytest.raises(ValueError, match=r"reference_semantic_ids\[0\]=8 is not an integer in \[0, 8\)"):
        builder.cloning("Hi.", [15] * 32, "Ref.", [8])


@pytest.mark.parametrize(
    ("gender", "pitch", "speed", "match"),
    [
        ("Female", 2, 2, r"gender must be one of female, male, got 'Female'"),
        (0, 2, 2, r"gender must be one of female, male, got 0"),
        ("male", 5, 2, r"pitch must be an integer in 0\.\.4, got 5"),
        ("male", -1, 2, r"pitch must be an integer in 0\.\.4, got -1"),
        ("male", "2", 2, r"pitch must be an integer in 0\.\.4, got '2'"),
        ("male", 2, 7, r"speed must be an integer in 0\.\.4, got 7"),
        ("male", 2, True, r"speed must be an integer in 0\.\.4, got True"),
        ("male", 2, 1.0, r"speed must be an integer in 0\.\.4, got 1\.0"),
    ],
)
def test_style_is_validated(
    builder: SparkPromptBuilder, gender: object, pitch: object, speed: object, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        builder.controllable("Hi.", gender, pitch, speed)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=match):
        builder.controllable_with_globals("Hi.", gender, pitch, speed, GLOBALS)  # type: ignore[arg-type]


def test_numpy_levels_are_accepted(builder: SparkPromptBuilder) -> None:
    prompt = builder.controllable("Hi.", "male", np.int64(3), np.int8(1))
    assert "<|pitch_label_3|><|speed_label_1|>" in prompt


@pytest.mark.parametrize("text", ["", "   \n", "say <|im_end|> now", "<|bicodec_semantic_1|>"])
def test_unusable_text_is_refused(builder: SparkPromptBuilder, text: str) -> None:
    with pytest.raises(ValueError, match="text"):
        builder.fixed_voice(text, GLOBALS)
    with pytest.raises(ValueError, match="text"):
        builder.controllable(text, "female", 2, 2)


def test_text_must_be_a_string(builder: SparkPromptBuilder) -> None:
    with pytest.raises(TypeError, match="text must be a str"):
        builder.fixed_voice(b"Hi.", GLOBALS)  # type: ignore[arg-type]


def test_the_orpheus_prompt_is_upstreams_human_turn_then_the_start_of_speech() -> None:
    assert orpheus_prompt("Hi <laugh> there.", "tara") == (
        "<custom_token_3><|begin_of_text|>tara: Hi <laugh> there.<|eot_id|>"
        "<custom_token_4><custom_token_5><custom_token_1>"
    )


@pytest.mark.parametrize(
    ("text", "voice", "match"),
    [
        ("say <custom_token_2> now", "tara", "special-token markup such as '<custom_token_2>'"),
        ("hi", "ta<|eot_id|>ra", "speaker name"),
        ("  ", "tara", "text must not be empty"),
    ],
)
def test_the_orpheus_prompt_refuses_markup(text: str, voice: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        orpheus_prompt(text, voice)
