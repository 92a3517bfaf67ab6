"""The text of a SynthesizeStream call: deltas in, segments out as soon as they are complete.

A reader task takes the client's messages as they come and keeps the complete segments ready;
each time the synthesis can start a segment, it takes every ready one that fits in one segment
budget. The first sentence thus starts alone and at once, and text that arrives faster than it
is spoken (an LLM writing short sentences, such as CJK ones of a few characters) goes out in
full-size segments instead of one generator call per sentence.

Reading stops taking text at end of input so the call can finish without waiting for the
client to half-close; the reader keeps reading after that, and anything more the client sends
while audio is still streaming ends the call with INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import AsyncIterator

from voxserve.common.status import InvalidArgument
from voxserve.gateway.segmenter import SentenceBuffer, speakable
from voxserve.v1 import speech_pb2

_NOTHING_TO_SPEAK = "text contains nothing to speak (only whitespace, punctuation or tags)"


def join(first: str, second: str) -> str:
    """Two consecutive segments as one: scripts written without spaces (CJK) join without one."""
    wide = unicodedata.east_asian_width(first[-1]) in "WF" and unicodedata.east_asian_width(second[0]) in "WF"
    return first + second if wide else f"{first} {second}"


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
        self.segment_max_chars = segment_max_chars
        self.buffer = SentenceBuffer(segment_max_chars)
        self.first_text = first_text
        self.characters = 0
        self.segments = 0
        self._ready: list[str] = []
        """Complete segments not yet taken, in order."""
        self._ended = False
        """No more text will come (end of input or half-close)."""
        self._error: BaseException | None = None
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    def _add(self, delta: str) -> None:
        self.characters += len(delta)
        if self.characters > self.max_chars:
            raise InvalidArgument(
                f"text: the deltas add up to {self.characters} characters; the limit per call is "
                f"{self.max_chars}"
            )
        self._put(self.buffer.feed(delta))

    def _put(self, segments: list[str]) -> None:
        self._ready += segments
        self._changed.set()

    async def _read(self) -> None:
        try:
            self._add(self.first_text)
            async for message in self.requests:
                kind = message.WhichOneof("message")
                if self._ended:
                    raise InvalidArgument(f"{kind or 'message'}: sent after end of input")
                if kind == "text":
                    self._add(message.text)
                elif kind == "flush":
                    self._put(self.buffer.flush())
                elif kind == "end":
                    self._put(self.buffer.finish())
                    self._ended = True
                elif kind == "config":
                    raise InvalidArgument("config: only the first message may be a config")
                else:
                    raise InvalidArgument("message: empty; set one of text, flush or end")
            if not self._ended:
                self._put(self.buffer.finish())
                self._ended = True
        except InvalidArgument as exc:
            self._error = exc
        finally:
            self._changed.set()

    async def texts(self) -> AsyncIterator[str]:
        """Segments in order, each as much ready text as fits in one segment budget; raises
        InvalidArgument for input that breaks the protocol."""
        self._reader = asyncio.create_task(self._read())
        while True:
            while not (self._ready or self._ended or self._error):
                self._changed.clear()
                await self._changed.wait()
            self.check()
            if not self._ready:
                break
            yield self._take()
        if not self.segments:
            raise InvalidArgument(_NOTHING_TO_SPEAK)

    def _take(self) -> str:
        text = self._ready.pop(0)
        while self._ready and len(joined := join(text, self._ready[0])) <= self.segment_max_chars:
            text = joined
            self._ready.pop(0)
        self.segments += 1
        return text

    def check(self) -> None:
        """Raises what the client did wrong, if anything so far (also after end of input)."""
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()


def check_speakable(text: str) -> None:
    if not speakable(text):
        raise InvalidArgument(_NOTHING_TO_SPEAK)
