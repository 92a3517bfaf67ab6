"""Streamed text to segments: the first sentence goes alone and at once, text that arrives while
earlier segments are still being generated is packed into full-size segments, and protocol
errors surface as INVALID_ARGUMENT."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from voxserve.common.status import InvalidArgument
from voxserve.gateway.text_input import TextInput, join
from voxserve.v1 import speech_pb2

Message = speech_pb2.SynthesizeStreamRequest
END = Message(end=speech_pb2.EndOfInput())
FLUSH = Message(flush=speech_pb2.Flush())
CJK = "今天天气很好。" * 80  # 560 characters in 80 sentences of 7


async def messages(
    items: list[Message], delay: float = 0.0, sent: asyncio.Event | None = None
) -> AsyncIterator[Message]:
    for item in items:
        await asyncio.sleep(delay)
        yield item
    if sent is not None:
        sent.set()


def deltas(text: str, size: int) -> list[Message]:
    return [Message(text=text[i : i + size]) for i in range(0, len(text), size)]


def text_input(
    items: list[Message], *, delay: float = 0.0, first: str = "", limit: int = 20_000
) -> TextInput:
    return TextInput(messages(items, delay), first_text=first, max_chars=limit, segment_max_chars=250)


@pytest.mark.parametrize(
    ("first", "second", "joined"),
    [
        ("Hello there.", "How are you?", "Hello there. How are you?"),
        ("今天天气很好。", "我们走吧。", "今天天气很好。我们走吧。"),
        ("यह अच्छा है।", "चलो चलें।", "यह अच्छा है। चलो चलें।"),
        ("It said 好。", "Then left.", "It said 好。 Then left."),
    ],
)
def test_segments_join_with_a_space_except_between_scripts_written_without_one(
    first: str, second: str, joined: str
) -> None:
    assert join(first, second) == joined


async def test_text_that_arrives_while_a_segment_is_generated_goes_out_packed() -> None:
    sent = asyncio.Event()
    source = TextInput(
        messages([*deltas(CJK, 5), END], 0.001, sent), first_text="", max_chars=20_000, segment_max_chars=250
    )
    texts = source.texts()
    first = await anext(texts)
    assert first == "今天天气很好。", "the first sentence starts alone, without waiting for more"
    # The first segment is being generated; the rest of the text arrives meanwhile.
    await asyncio.wait_for(sent.wait(), 30)
    await asyncio.sleep(0.05)  # the reader takes in the last message
    rest = [text async for text in texts]
    assert "".join([first, *rest]) == CJK
    assert all(len(text) <= 250 for text in rest)
    assert len(rest) == 3, "553 characters in 250-character segments, not 79 one-sentence calls"


async def test_text_slower_than_its_segments_goes_out_sentence_by_sentence() -> None:
    sentences = ["One sentence here.", "Another one follows.", "And a last one."]
    source = text_input([*(m for s in sentences for m in deltas(s + " ", 4)), END], delay=0.01)
    assert [text async for text in source.texts()] == sentences


async def test_a_flush_releases_an_unfinished_sentence_and_a_half_close_ends_the_input() -> None:
    source = text_input([Message(text="Wait for it"), FLUSH], first="Begin. ")
    texts = source.texts()
    assert await anext(texts) == "Begin."
    assert await anext(texts) == "Wait for it"
    assert [text async for text in texts] == []


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([Message(text="Hello there."), END, Message(text="more")], "text: sent after end of input"),
        ([Message(text="Hello there."), END, FLUSH], "flush: sent after end of input"),
        ([Message(config=speech_pb2.SynthesizeRequest(text="x"))], "config: only the first message"),
        ([Message()], "message: empty; set one of text, flush or end"),
        ([*deltas("a" * 450, 50), END], "the deltas add up to 450 characters; the limit per call is 400"),
        ([Message(text=" <laugh> ... "), END], "text contains nothing to speak"),
    ],
)
async def test_input_that_breaks_the_protocol_is_invalid_argument(items: list[Message], message: str) -> None:
    source = text_input(items, limit=400)
    with pytest.raises(InvalidArgument, match=message):
        async for _ in source.texts():
            await asyncio.sleep(0.05)  # the audio of each segment streams meanwhile
            source.check()
        await asyncio.sleep(0.05)
        source.check()
    source.close()


async def test_closing_stops_reading() -> None:
    reads = 0

    async def endless() -> AsyncIterator[Message]:
        nonlocal reads
        while True:
            reads += 1
            yield Message(text="More text. ")
            await asyncio.sleep(0.005)

    source = TextInput(endless(), first_text="", max_chars=10**9, segment_max_chars=250)
    texts = source.texts()
    await anext(texts)
    source.close()
    await asyncio.sleep(0.05)
    count = reads
    await asyncio.sleep(0.05)
    assert reads == count
