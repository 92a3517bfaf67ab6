"""The small interface every vocoder codec implements.

The scheduler only ever talks to a codec through this interface: it conditions a stream once on
its voice, then decodes batches of equal-length token windows for many streams in one forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass(frozen=True)
class VoiceConditioning:
    """What a stream's start message says about its voice.

    BiCodec uses the 32 global token ids; other families add their own fields here.
    """

    global_ids: tuple[int, ...] = ()


class CodecInputError(ValueError):
    """Raised for conditioning or tokens a codec cannot accept; the message names field and limit."""


class Codec(Protocol):
    """A token-to-waveform decoder loaded from a model pack."""

    name: str
    sample_rate: int
    samples_per_token: int
    token_vocab_size: int
    """Valid token ids are 0 .. token_vocab_size - 1."""
    receptive_field_tokens: int
    """Theoretical one-sided receptive field in tokens: a window with this much context on both
    sides decodes its middle exactly as a full decode would."""

    def condition(self, voice: VoiceConditioning) -> torch.Tensor:
        """Per-stream conditioning computed once at stream start (validates the voice)."""
        ...

    def decode(self, tokens: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        """Decode a batch of equal-length windows.

        tokens: int64 [B, T]; conditioning: the stacked results of `condition`, [B, ...].
        Returns float32 [B, T * samples_per_token]. Rows are independent of each other.
        """
        ...
