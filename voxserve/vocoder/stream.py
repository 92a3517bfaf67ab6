"""Per-stream decode state: the tokens received, what has been decoded, and the chunk outbox.

A stream is driven from two sides: the servicer appends tokens as frames arrive, the scheduler
takes windows of work and delivers decoded samples. Only the scheduler task advances
`decoded_tokens`, so no lock is needed on the event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

import torch

_ids = itertools.count(1)


@dataclass(frozen=True)
class ChunkPolicy:
    """How many tokens a stream's chunks cover and how much context each window carries."""

    first_chunk_tokens: int
    chunk_tokens: int
    left_context_tokens: int
    lookahead_tokens: int

    def chunk_size(self, decoded_tokens: int) -> int:
        """Tokens in the chunk after `decoded_tokens`: first, first, 2 x first, ... up to chunk_tokens.

        A chunk is never longer than the audio already sent, so while the generator is faster
        than real time the next chunk is ready before the client's buffer runs dry; a fixed
        larger second chunk would leave a gap right after the small first one.
        """
        if decoded_tokens == 0:
            return self.first_chunk_tokens
        return min(self.chunk_tokens, max(self.first_chunk_tokens, decoded_tokens))


@dataclass(frozen=True)
class Window:
    """One unit of decode work: tokens [start, end) decoded with context on both sides."""

    stream_id: int
    start: int
    end: int
    left: int
    right: int
    final: bool

    @property
    def length(self) -> int:
        return self.left + (self.end - self.start) + self.right


@dataclass(frozen=True)
class Chunk:
    samples: torch.Tensor  # float32 [n]
    sample_offset: int
    final: bool


@dataclass
class DecodeStream:
    conditioning: torch.Tensor
    samples_per_token: int
    id: int = field(default_factory=lambda: next(_ids))
    tokens: list[int] = field(default_factory=list)
    ended: bool = False
    decoded_tokens: int = 0
    in_flight: bool = False
    finished: bool = False
    created: float = field(default_factory=time.monotonic)
    first_audio_at: float | None = None
    outbox: asyncio.Queue[Chunk | BaseException] = field(default_factory=asyncio.Queue)

    def append(self, token_ids: list[int]) -> None:
        self.tokens.extend(token_ids)

    def end(self) -> None:
        self.ended = True

    def fail(self, error: BaseException) -> None:
        self.outbox.put_nowait(error)

    def next_window(self, policy: ChunkPolicy) -> Window | None:
        """The next window of work, or None while the stream waits for tokens.

        While the stream is open a chunk is ready only when its lookahead has arrived too, so
        its samples never change afterwards; End releases the rest without lookahead, which is
        exact because a full decode also sees nothing beyond the last token.
        """
        if self.finished or self.in_flight:
            return None
        start, available = self.decoded_tokens, len(self.tokens)
        if self.ended:
            return Window(self.id, start, available, min(policy.left_context_tokens, start), 0, final=True)
        want = policy.chunk_size(start)
        end = start + want
        if available < end + policy.lookahead_tokens:
            return None
        return Window(
            self.id, start, end, min(policy.left_context_tokens, start), policy.lookahead_tokens, final=False
        )

    def window_tokens(self, window: Window) -> list[int]:
        return self.tokens[window.start - window.left : window.end + window.right]

    def deliver(self, window: Window, samples: torch.Tensor) -> None:
        self.decoded_tokens = window.end
        self.in_flight = False
        if window.final:
            self.finished = True
        if self.first_audio_at is None and samples.numel():
            self.first_audio_at = time.monotonic()
        self.outbox.put_nowait(Chunk(samples, window.start * self.samples_per_token, window.final))
