"""Per-stream decode state: the tokens received, what has been decoded, and the chunk outbox.

A stream is driven from two sides: the servicer appends tokens as frames arrive, the scheduler
takes windows of work and delivers decoded samples. Only the scheduler task advances
`decoded_tokens`, so no lock is needed on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from voxserve.vocoder.codecs.base import Window

_ids = itertools.count(1)

# The share of a client's lead one chunk may take on an idle device and on a busy one. Below 1
# even when busy: the chunk's tokens must arrive and it must be decoded before the lead is gone.
IDLE_LEAD_SHARE, BUSY_LEAD_SHARE = 0.25, 0.75
# A client holding less than this share of a first chunk is about to run dry: whatever tokens are
# here go out now, even fewer than a first chunk (the generator is late; waiting would stall).
URGENT_LEAD_SHARE = 0.5


@dataclass(frozen=True)
class ChunkPolicy:
    """How many tokens a stream's chunks cover and how much context each window carries."""

    first_chunk_tokens: int
    max_chunk_tokens: int
    left_context_tokens: int
    lookahead_tokens: int

    def __post_init__(self) -> None:
        if not 0 < self.first_chunk_tokens <= self.max_chunk_tokens:
            raise ValueError(
                f"chunk sizes need 0 < first_chunk_tokens ({self.first_chunk_tokens}) "
                f"<= max_chunk_tokens ({self.max_chunk_tokens})"
            )

    @property
    def sizes(self) -> tuple[int, ...]:
        """The chunk sizes in use: first, 2 x first, 4 x first, ... up to the largest.

        Few distinct sizes mean few distinct window lengths, so streams at different points
        still meet in one equal-length batch.
        """
        sizes, size = [], self.first_chunk_tokens
        while size < self.max_chunk_tokens:
            sizes.append(size)
            size *= 2
        return (*sizes, self.max_chunk_tokens)

    @property
    def longest_window(self) -> int:
        return self.left_context_tokens + self.max_chunk_tokens + self.lookahead_tokens

    @property
    def window_lengths(self) -> frozenset[int]:
        """Every length a window of a chunk of the ladder has: with full left context (a
        stream's steady state) and with none (its first window). Final windows vary."""
        right = self.lookahead_tokens
        return frozenset({self.window_length(size) for size in self.sizes} | {s + right for s in self.sizes})

    def window_length(self, chunk_tokens: int) -> int:
        return self.left_context_tokens + chunk_tokens + self.lookahead_tokens

    def chunk_size(
        self,
        lead_tokens: float | None,
        pressure: float,
        backlog_tokens: int = 0,
        decode_tokens: Callable[[int], float] | None = None,
    ) -> int:
        """Tokens in a stream's next chunk.

        `lead_tokens` is the audio its client holds but has not played yet (None before the
        first chunk); `pressure` in [0, 1] is how busy the device is; `backlog_tokens` are
        tokens already here beyond what has been decoded (lookahead excluded).

        Waiting for a chunk's tokens must not outlast the client's buffer: while the generator
        is at least real time, a chunk no longer than the lead arrives before the client runs
        dry. An idle device waits for at most a quarter of the lead, which keeps chunks near the
        first size until the client holds seconds of audio; a busy one for up to three
        quarters, so chunks grow and their fixed context costs less per token. Tokens already
        here cost no waiting, so a stream that has fallen behind its generator (the device is
        saturated) decodes its whole backlog at once, up to the largest chunk: that is where
        larger chunks save the most. A client about to run dry gets whatever tokens are here.

        With a measured cost (`decode_tokens`: a window's predicted decode time for its length,
        in tokens of audio) the chunk is the largest size whose tokens can arrive and be decoded
        within that share of the lead: the share still grows with the load (an idle device keeps
        chunks small, so streams that arrive meanwhile are not held up behind long forwards), and
        the chunk's own decode time now counts against it too.
        """
        if lead_tokens is None:
            return self.first_chunk_tokens
        if (
            lead_tokens < URGENT_LEAD_SHARE * self.first_chunk_tokens
            and 0 < backlog_tokens < self.first_chunk_tokens
        ):
            return backlog_tokens
        share = IDLE_LEAD_SHARE + pressure * (BUSY_LEAD_SHARE - IDLE_LEAD_SHARE)
        if decode_tokens is not None:
            budget = share * lead_tokens
            fitting = [
                size
                for size in self.sizes
                if max(0, size - backlog_tokens) + decode_tokens(self.window_length(size)) <= budget
            ]
            if fitting:
                return max(fitting)
            # No size lands in time: the client runs short whatever it gets (the device is
            # behind). Of the sizes already here, the one that costs the device least per token
            # (context and fixed costs spread over more audio) catches up fastest.
            here = [size for size in self.sizes if size <= backlog_tokens] or [self.first_chunk_tokens]
            return min(here, key=lambda size: (decode_tokens(self.window_length(size)) / size, -size))
        wanted = min(max(lead_tokens * share, backlog_tokens), self.max_chunk_tokens)
        return max(s for s in self.sizes if s <= max(wanted, self.first_chunk_tokens))


@dataclass(frozen=True)
class Chunk:
    samples: torch.Tensor  # float32 [n]
    sample_offset: int
    final: bool


@dataclass
class DecodeStream:
    conditioning: Any
    samples_per_token: int
    sample_rate: int
    state: Any = None
    """The codec's own per-stream decode state (see `Codec.open_stream`)."""
    resume_from_sample: int = 0
    """Samples the caller already holds (a replay after a failed replica): decoded, not sent."""
    replay_ends: collections.deque[int] = field(default_factory=collections.deque)
    """Token counts at which a failed replica's chunks ended: the replay decodes these windows
    first, so its samples (and a stateful codec's state) match the failed replica's."""
    id: int = field(default_factory=lambda: next(_ids))
    tokens: list[Any] = field(default_factory=list)
    """Token ids, or frames of codes (tuples) for a codec with several codes per token."""
    ended: bool = False
    decoded_tokens: int = 0
    in_flight: bool = False
    finished: bool = False
    created: float = field(default_factory=time.monotonic)
    first_audio_at: float | None = None
    ready_since: float | None = None
    """When the scheduler first saw the stream's current window ready (for the queue-wait metric)."""
    outbox: asyncio.Queue[Chunk | BaseException] = field(default_factory=asyncio.Queue)

    @property
    def token_seconds(self) -> float:
        return self.samples_per_token / self.sample_rate

    def append(self, tokens: list[Any]) -> None:
        self.tokens.extend(tokens)

    def end(self) -> None:
        self.ended = True

    def fail(self, error: BaseException) -> None:
        self.outbox.put_nowait(error)

    def deadline(self) -> float | None:
        """When a client playing in real time from its first sample runs out of audio."""
        if self.first_audio_at is None:
            return None
        return self.first_audio_at + self.decoded_tokens * self.token_seconds

    def backlog_tokens(self, policy: ChunkPolicy) -> int:
        """Tokens that could be decoded right now: here, not decoded, not needed as lookahead."""
        return max(0, len(self.tokens) - self.decoded_tokens - policy.lookahead_tokens)

    def lead_seconds(self, now: float) -> float | None:
        """Audio the client holds but has not played yet; negative while it is starved."""
        deadline = self.deadline()
        return None if deadline is None else deadline - now

    def next_window(self, policy: ChunkPolicy, chunk_tokens: int) -> Window | None:
        """The next window of work, or None while the stream waits for tokens.

        While the stream is open a chunk is ready only when its lookahead has arrived too, so
        its samples never change afterwards; End releases the rest without lookahead, which is
        exact because a full decode also sees nothing beyond the last token. A remainder longer
        than the largest chunk goes in largest-chunk windows first, so no window outgrows the
        batch limits however many tokens arrive at once.
        """
        if self.finished or self.in_flight:
            return None
        start, available = self.decoded_tokens, len(self.tokens)
        left = min(policy.left_context_tokens, start)
        if self.replay_ends:
            end = self.replay_ends[0]
            if available >= end + policy.lookahead_tokens:
                return Window(self.id, start, end, left, policy.lookahead_tokens, final=False)
            if not self.ended:
                return None
            self.replay_ends.clear()  # the stream ended sooner than the replayed chunks said
        if self.ended and available - start <= policy.max_chunk_tokens + policy.lookahead_tokens:
            return Window(self.id, start, available, left, 0, final=True)
        if self.ended:
            chunk_tokens = policy.max_chunk_tokens
        end = start + chunk_tokens
        if available < end + policy.lookahead_tokens:
            return None
        return Window(self.id, start, end, left, policy.lookahead_tokens, final=False)

    def window_tokens(self, window: Window) -> list[Any]:
        return self.tokens[window.start - window.left : window.end + window.right]

    def deliver(self, window: Window, samples: torch.Tensor, now: float) -> None:
        self.decoded_tokens = window.end
        while self.replay_ends and self.replay_ends[0] <= window.end:
            self.replay_ends.popleft()
        self.in_flight = False
        self.ready_since = None
        if window.final:
            self.finished = True
        if self.first_audio_at is None and samples.numel():
            self.first_audio_at = now
        self.outbox.put_nowait(Chunk(samples, window.start * self.samples_per_token, window.final))
