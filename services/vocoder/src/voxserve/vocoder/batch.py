"""A batch of equal-length decode windows from different streams.

Only windows of equal length share a forward: codecs whose padding is not masked then keep
every row's samples identical to decoding it alone, and the others pad little.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from voxserve.vocoder.codecs.base import Codec, DecodeRow, Window
from voxserve.vocoder.stream import DecodeStream


@dataclass
class Batch:
    rows: list[DecodeRow]
    audio: list[torch.Tensor] | None = None
    """Per row, float32 samples of its own tokens, once decoded."""

    @classmethod
    def from_requests(cls, windows: Sequence[Window], streams: dict[int, DecodeStream]) -> Batch:
        lengths = {w.length for w in windows}
        if len(lengths) != 1:
            raise ValueError(f"windows of one batch must have equal length, got {sorted(lengths)}")
        rows = []
        for w in windows:
            stream = streams[w.stream_id]
            tokens = torch.tensor(stream.window_tokens(w), dtype=torch.long)
            rows.append(DecodeRow(w, tokens, stream.conditioning, stream.state))
        return cls(rows)

    @classmethod
    def random(
        cls,
        codec: Codec,
        rows: int,
        chunk: int,
        lookahead: int,
        conditioning: Any,
        seed: int,
        generator: torch.Generator,
    ) -> Batch:
        """`rows` first windows (`chunk` tokens, then `lookahead`) of random tokens, each its own
        stream opened with `seed + row`: forwards run before any stream arrives."""
        length = chunk + lookahead
        shape = (length,) if codec.codes_per_token == 1 else (length, codec.codes_per_token)
        return cls(
            [
                DecodeRow(
                    Window(-1 - i, 0, chunk, 0, lookahead, final=False),
                    torch.randint(0, codec.token_vocab_size, shape, generator=generator),
                    conditioning,
                    codec.open_stream(conditioning, seed + i),
                )
                for i in range(rows)
            ]
        )

    @property
    def windows(self) -> list[Window]:
        return [row.window for row in self.rows]

    @property
    def size(self) -> int:
        return len(self.rows)

    @property
    def window_length(self) -> int:
        return self.rows[0].window.length

    def filter(self, stream_ids: set[int]) -> Batch | None:
        """Keep only the rows of these streams (a cancelled stream is just filtered out)."""
        keep = [i for i, row in enumerate(self.rows) if row.window.stream_id in stream_ids]
        if not keep:
            return None
        if len(keep) == self.size:
            return self
        return Batch(
            [self.rows[i] for i in keep],
            None if self.audio is None else [self.audio[i] for i in keep],
        )

    def outputs(self) -> list[tuple[Window, torch.Tensor]]:
        """Each row's window and the samples of its own tokens."""
        if self.audio is None:
            raise ValueError("the batch has not been decoded")
        return list(zip(self.windows, self.audio, strict=True))
