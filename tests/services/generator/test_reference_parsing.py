"""A voice's reference in a Generate request: parsed verbatim, or refused naming the field and limit."""

from __future__ import annotations

import pytest

from voxserve.common.status import InvalidArgument
from voxserve.families.registry import family_named
from voxserve.generator.generate_args import MAX_REFERENCE_SEMANTIC_IDS, GenerateArgs, Reference
from voxserve.generator.servicer import parse_generate_request
from voxserve.v1 import generator_pb2

GLOBALS = list(range(32))
MAX_TEXT_CHARS = 40


def parse(text: str = "Hello there.", reference_text: str = "", ids: list[int] | None = None) -> GenerateArgs:
    request = generator_pb2.GenerateRequest(
        text=text,
        global_tokens=generator_pb2.GlobalTokens(
            ids=GLOBALS, reference_text=reference_text, reference_semantic_ids=ids or []
        ),
    )
    return parse_generate_request(
        request, max_text_chars=MAX_TEXT_CHARS, max_tokens=100, num_global=4096, family=family_named("spark")
    )


def test_a_reference_is_parsed_verbatim_with_the_globals() -> None:
    args = parse("  Hello there.  ", " This is me, ", [8191, 0, 5])
    assert args.text == "Hello there." and args.global_ids == tuple(GLOBALS)
    assert args.reference == Reference(" This is me, ", (8191, 0, 5))


def test_no_reference_is_a_plain_fixed_voice() -> None:
    args = parse()
    assert args.reference is None and args.global_ids == tuple(GLOBALS)


def test_the_most_reference_ids_are_accepted() -> None:
    args = parse(reference_text="me", ids=[1] * MAX_REFERENCE_SEMANTIC_IDS)
    assert args.reference is not None and len(args.reference.semantic_ids) == MAX_REFERENCE_SEMANTIC_IDS


def test_the_text_limit_holds_for_the_text_and_the_transcript_together() -> None:
    args = parse("a" * 30, "b" * 10, [1])
    assert args.reference is not None and args.reference.text == "b" * 10


@pytest.mark.parametrize(
    ("text", "reference_text", "ids", "message"),
    [
        (
            "Hi.",
            "This is me.",
            [],
            "global_tokens.reference_text is set without global_tokens.reference_semantic_ids; "
            "set both or neither",
        ),
        (
            "Hi.",
            "",
            [1, 2],
            "global_tokens.reference_semantic_ids needs global_tokens.reference_text (the reference's "
            "transcript), which is empty; set both or neither",
        ),
        ("Hi.", " \n ", [1], "global_tokens.reference_semantic_ids needs global_tokens.reference_text"),
        (
            "Hi.",
            "me",
            [1] * (MAX_REFERENCE_SEMANTIC_IDS + 1),
            f"global_tokens.reference_semantic_ids has {MAX_REFERENCE_SEMANTIC_IDS + 1} ids; "
            f"the limit is {MAX_REFERENCE_SEMANTIC_IDS}",
        ),
        (
            "a" * 30,
            "b" * 11,
            [1],
            "text and global_tokens.reference_text have 41 characters together (30 + 11); the limit is 40",
        ),
    ],
)
def test_a_bad_reference_is_refused_naming_the_field(
    text: str, reference_text: str, ids: list[int], message: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse(text, reference_text, ids)
    assert str(info.value).startswith(message)


def test_the_globals_are_checked_before_the_reference() -> None:
    request = generator_pb2.GenerateRequest(
        text="Hi.", global_tokens=generator_pb2.GlobalTokens(ids=GLOBALS[:-1], reference_text="me")
    )
    with pytest.raises(InvalidArgument, match=r"global_tokens\.ids has 31 ids; exactly 32 are required"):
        parse_generate_request(request, max_text_chars=MAX_TEXT_CHARS, max_tokens=100, num_global=4096)
