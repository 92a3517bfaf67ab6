"""A batch of equal-length decode windows from different streams.

Zero padding is not masked in the codecs, so only windows of equal length share a forward; that
keeps every row's samples identical to decoding it alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from voxserve.vocoder.stream import DecodeStream, Window


@dataclass
class Batch:
    windows: list[Window]
    tokens: torch.Tensor  # int64 [B, T]
    conditioning: torch.Tensor  # [B, ...]
    audio: torch.Tensor | None = None  # float32 [B, length x samples per token], once decoded

    @classmethod
    def from_requests(cls, windows: Sequence[Window], streams: dict[int, DecodeStream]) -> Batch:
        lengths = {w.length for w in windows}
        if len(lengths) != 1:
            raise ValueError(f"windows of one batch must have equal length, got {sorted(lengths)}")
        tokens = torch.tensor([streams[w.stream_id].window_tokens(w) for w in windows], dtype=torch.long)
        conditioning = torch.stack([streams[w.stream_id].conditioning for w in windows])
        return cls(list(windows), tokens, conditioning)

    @property
    def size(self) -> int:
        return len(self.windows)

    def filter(self, stream_ids: set[int]) -> Batch | None:
        """Keep only the rows of these streams (a cancelled stream is just filtered out)."""
        keep = [i for i, w in enumerate(self.windows) if w.stream_id in stream_ids]
        if not keep:
            return None
        if len(keep) == self.size:
            return self
        index = torch.tensor(keep)
        return Batch(
            [self.windows[i] for i in keep],
            self.tokens[index],
            self.conditioning[index],
            None if self.audio is None else self.audio[index],
        )

    @classmethod
    def concatenate(cls, batches: Sequence[Batch]) -> Batch:
        windows = [w for b in batches for w in b.windows]
        if len({w.length for w in windows}) != 1:
            raise ValueError("only batches of equal window length can be concatenated")
        if any(b.audio is not None for b in batches):
            raise ValueError("only batches not yet decoded can be concatenated")
        return cls(
            windows,
            torch.cat([b.tokens for b in batches]),
            torch.cat([b.conditioning for b in batches]),
        )

    def outputs(self, samples_per_token: int) -> list[tuple[Window, torch.Tensor]]:
        """Each row's window and the samples of its own tokens, context cropped away."""
        if self.audio is None:
            raise ValueError("the batch has not been decoded")
        rows = []
        for i, w in enumerate(self.windows):
            first = w.left * samples_per_token
            rows.append((w, self.audio[i, first : first + (w.end - w.start) * samples_per_token].clone()))
        return rows
