"""The engine-free parts of `TokenGenerator`: frame assembly, budgets and prompt choice."""

from __future__ import annotations

import numpy as np
import pytest

from voxserve.common.status import InvalidArgument
from voxserve.families.speakers import SpeakerSet
from voxserve.generator.engine import FrameAssembler, Sampling, Speaker, Style, TokenGenerator
from voxserve.generator.token_table import ORPHEUS, SPARK, TokenTable


def orpheus_table() -> TokenTable:
    vocab = {f"<custom_token_{n}>": 100 + n for n in range(10 + 7 * 4096)}
    vocab["<|eot_id|>"] = 5
    return TokenTable.from_vocab(vocab, grammar=ORPHEUS)


def spark_table() -> TokenTable:
    vocab = {f"<|bicodec_global_{n}|>": n for n in range(4096)}
    vocab |= {f"<|bicodec_semantic_{n}|>": 4096 + n for n in range(8192)}
    for i, marker in enumerate(SPARK.markers.values()):
        vocab[marker] = 20000 + i
    return TokenTable.from_vocab(vocab, grammar=SPARK)


def generator(table: TokenTable, speakers: SpeakerSet | None = None) -> TokenGenerator:
    return TokenGenerator(None, None, table, max_model_len=1000, max_tokens=500, speakers=speakers)


def test_whole_frames_come_out_whatever_the_steps() -> None:
    frames = FrameAssembler(7)
    indices = [p * 4096 + (10 * f + p) for f in range(3) for p in range(7)]
    out = frames.add(np.array(indices[:5])) + frames.add(np.array(indices[5:16]))
    assert out == [10 * 0 + p for p in range(7)] + [10 + p for p in range(7)]
    assert frames.pending == 2
    assert frames.add(np.array(indices[16:])) == [20 + p for p in range(7)] and frames.pending == 0


def test_a_token_out_of_its_place_is_dropped_without_shifting_the_rest() -> None:
    frames = FrameAssembler(7)
    wrong = 3 * 4096 + 1  # position 3 where position 1 is due
    indices = [0 * 4096 + 1, wrong, *(p * 4096 + p for p in range(1, 7))]
    assert frames.add(np.array(indices)) == [1, 1, 2, 3, 4, 5, 6] and frames.dropped == 1


def test_single_code_families_pass_straight_through() -> None:
    assert FrameAssembler(1).add(np.array([5, 9, 4095])) == [5, 9, 4095]


def test_orpheus_budgets_are_whole_frames() -> None:
    orpheus = generator(orpheus_table())
    assert orpheus.frame_layout is not None and orpheus.frame_layout.first_id == 110
    assert orpheus.frame_layout.end_ids == (orpheus.table.end_semantic_id, 5)
    assert orpheus._semantic_budget(Sampling(max_tokens=20), 30) == 14
    assert orpheus._semantic_budget(Sampling(), 30) == 497  # 500 rounded down to 71 frames
    with pytest.raises(InvalidArgument, match=r"max_tokens=6 is less than one orpheus frame \(7 tokens\)"):
        orpheus._semantic_budget(Sampling(max_tokens=6), 30)
    assert generator(spark_table())._semantic_budget(Sampling(max_tokens=20), 30) == 20


def test_orpheus_audio_tokens_must_have_consecutive_ids() -> None:
    vocab = {f"<custom_token_{n}>": 100 + n + (n > 5000) for n in range(10 + 7 * 4096)}
    vocab["<|eot_id|>"] = 5
    with pytest.raises(ValueError, match="consecutive ids"):
        generator(TokenTable.from_vocab(vocab, grammar=ORPHEUS))


def test_orpheus_prompts_name_the_speaker_and_default_to_the_packs_first() -> None:
    orpheus = generator(orpheus_table(), SpeakerSet(("tara", "leo")))
    prompt, head = orpheus._prompt("Hi.", None, None, Speaker("leo"))
    assert head is None and prompt is not None and "leo: Hi." in prompt
    assert "tara: Hi." in (orpheus._prompt("Hi.", None, None, None)[0] or "")
    with pytest.raises(ValueError, match="'bob' is not one of this pack's speakers"):
        orpheus._prompt("Hi.", None, None, Speaker("bob"))
    with pytest.raises(InvalidArgument, match="speaker is required"):
        generator(orpheus_table())._prompt("Hi.", None, None, None)


def test_spark_speaker_prompts_generate_or_prefill_the_globals() -> None:
    spark = generator(spark_table(), SpeakerSet(("diya", "kabir")))
    prompt, head = spark._prompt("नमस्ते <laugh>", None, None, Speaker("kabir"))
    assert prompt is None and head == "<|task_tts|><|start_content|>kabir: नमस्ते <laugh><|end_content|>"
    prompt, head = spark._prompt("नमस्ते", None, None, Speaker("kabir", tuple(range(32))))
    assert head is None and prompt is not None
    assert prompt.startswith("<|task_tts|><|start_content|>kabir: नमस्ते<|end_content|><|start_global_token|>")
    assert spark._prompt("x", None, None, None)[1] == "<|task_tts|><|start_content|>diya: x<|end_content|>"
    with pytest.raises(InvalidArgument, match="style is not accepted: this pack names its speakers"):
        spark._prompt("x", None, Style(), None)
    with pytest.raises(InvalidArgument, match="this pack has no named speakers"):
        generator(spark_table())._prompt("x", None, None, Speaker("diya"))
