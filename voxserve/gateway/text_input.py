"""The text of a SynthesizeStream call: deltas in, complete segments out as soon as they are known.

Reading stops at end of input so the call can finish without waiting for the client to
half-close; a watcher keeps reading after that, and anything more the client sends while audio is
still streaming ends the call with INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from voxserve.common.status import InvalidArgument
from voxserve.gateway.segmenter import SentenceBuffer, speakable
from voxserve.v1 import speech_pb2

_NOTHING_TO_SPEAK = "text contains nothing to speak (only whitespace, punctuation or tags)"


class TextInput:
    def __init__(
        self,
        requests: AsyncIterator[speech_pb2.SynthesizeStreamRequest],
        *,
        first_text: str,
        max_chars: int,
        segment_max_chars: int,
    ):
        self.requests = requests
        self.max_chars = max_chars
        self.buffer = SentenceBuffer(segment_max_chars)
        self.first_text = first_text
        self.characters = 0
        self.segments = 0
        self._after_end: asyncio.Task[None] | None = None

    def _add(self, delta: str) -> list[str]:
        self.characters += len(delta)
        if self.characters > self.max_chars:
            raise InvalidArgument(
                f"text: the deltas add up to {self.characters} characters; the limit per call is "
                f"{self.max_chars}"
            )
        return self.buffer.feed(delta)

    async def texts(self) -> AsyncIterator[str]:
        """Segments in order; raises InvalidArgument for input that breaks the protocol."""
        pending = self._add(self.first_text)
        ended = False
        async for message in self.requests:
            kind = message.WhichOneof("message")
            if kind == "text":
                pending += self._add(message.text)
            elif kind == "flush":
                pending += self.buffer.flush()
            elif kind == "end":
                ended = True
            elif kind == "config":
                raise InvalidArgument("config: only the first message may be a config")
            else:
                raise InvalidArgument("message: empty; set one of text, flush or end")
            for text in self._release(pending):
                yield text
            pending = []
            if ended:
                self._after_end = asyncio.create_task(self._refuse_more())
                break
        for text in self._release(pending + self.buffer.finish()):
            yield text
        if not self.segments:
            raise InvalidArgument(_NOTHING_TO_SPEAK)

    def _release(self, texts: list[str]) -> list[str]:
        self.segments += len(texts)
        return texts

    async def _refuse_more(self) -> None:
        async for message in self.requests:
            raise InvalidArgument(f"{message.WhichOneof('message') or 'message'}: sent after end of input")

    def check(self) -> None:
        """Raises what the client did wrong after end of input, if anything so far."""
        task = self._after_end
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    def close(self) -> None:
        if self._after_end is not None:
            self._after_end.cancel()


def check_speakable(text: str) -> None:
    if not speakable(text):
        raise InvalidArgument(_NOTHING_TO_SPEAK)
