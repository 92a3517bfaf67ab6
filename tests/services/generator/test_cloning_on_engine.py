"""Upstream's voice-cloning prompt on the real engine (the session's stack, the tiny pack): the
reference lengthens the prompt by exactly its own tokens and is never echoed in the frames."""

from __future__ import annotations

import grpc
import pytest
from transformers import AutoTokenizer

from voxserve.families.pack import Pack
from voxserve.stack import LocalStack
from voxserve.v1 import generator_pb2, generator_pb2_grpc

GLOBALS = list(range(200, 232))
TEXT = "Hello there."
# Ends in a digit, so the tokenizer splits the joined "...1Hello" exactly where the two parts meet.
REFERENCE_TEXT = "This is the reference number 1"
REFERENCE_IDS = [(37 * n) % 8192 for n in range(60)]
NEW_TOKENS = 8


def generate(
    stack: LocalStack, text: str = TEXT, reference_text: str = "", reference_ids: list[int] | None = None
) -> list[generator_pb2.TokenFrame]:
    request = generator_pb2.GenerateRequest(
        text=text,
        global_tokens=generator_pb2.GlobalTokens(
            ids=GLOBALS, reference_text=reference_text, reference_semantic_ids=reference_ids or []
        ),
        sampling=generator_pb2.SamplingParams(max_tokens=NEW_TOKENS, min_tokens=NEW_TOKENS, seed=3),
    )
    with grpc.insecure_channel(stack.ports.address("generator")) as channel:
        return list(generator_pb2_grpc.GeneratorStub(channel).Generate(request, timeout=60))


def test_the_reference_leads_the_prompt_and_only_new_tokens_come_back(
    stack: LocalStack, tiny_pack: Pack
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_pack.llm_dir)
    reference_text_tokens = len(tokenizer(REFERENCE_TEXT, add_special_tokens=False)["input_ids"])
    plain = generate(stack)
    cloned = generate(stack, reference_text=REFERENCE_TEXT, reference_ids=REFERENCE_IDS)
    for frames in (plain, cloned):
        assert list(frames[0].global_ids) == GLOBALS and not frames[0].semantic_ids
        assert all(not f.global_ids for f in frames[1:])
        semantic = [i for f in frames for i in f.semantic_ids]
        # Exactly the tokens asked for: none of the 60 reference tokens is streamed back.
        assert len(semantic) == frames[-1].result.semantic_tokens == NEW_TOKENS
        assert all(0 <= i < 8192 for i in semantic)
    # The reference's semantic tokens, its transcript and <|start_semantic_token|>.
    extra = len(REFERENCE_IDS) + reference_text_tokens + 1
    assert cloned[-1].result.prompt_tokens == plain[-1].result.prompt_tokens + extra


@pytest.mark.parametrize(
    ("text", "reference_ids", "needles"),
    [
        (TEXT, [1, 8192], ["reference_semantic_ids[1]=8192", "[0, 8192)"]),
        (TEXT, [1] * 3001, ["global_tokens.reference_semantic_ids has 3001 ids", "limit is 3000"]),
        # 3000 reference tokens and a long text overrun the model's 4096 positions.
        (
            "zq xv " * 300,
            [1] * 3000,
            ["sampling.max_tokens=8 does not fit", "the voice's reference", "of the model's 4096 tokens"],
        ),
    ],
)
def test_a_reference_the_model_cannot_take_is_invalid(
    stack: LocalStack, text: str, reference_ids: list[int], needles: list[str]
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        generate(stack, text, REFERENCE_TEXT, reference_ids)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    for needle in needles:
        assert needle in info.value.details()
    assert len(generate(stack)) > 1, "the generator goes on serving"
