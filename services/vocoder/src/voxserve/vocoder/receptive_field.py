"""Measure how much token context a codec needs on each side of a window.

The theoretical receptive field is an upper bound; real weights usually let the influence of far
tokens decay well below audible levels much sooner. The vocoder sizes its left context and
lookahead from this measurement instead of the bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from voxserve.vocoder.codecs.base import VoiceConditioning, WindowDecoder

# Extra tokens beyond the largest context on each side of the full sequence, so that even the
# widest window decode is a proper sub-window with zero padding of its own at both ends.
_MARGIN_TOKENS = 4


@dataclass(frozen=True)
class ContextMeasurement:
    context_tokens: int
    """Smallest one-sided context found whose window error is within the tolerance (or the cap)."""
    errors: dict[int, float]
    """Max abs difference of the window against the full decode, for each context tried."""

    @property
    def error(self) -> float:
        return self.errors[self.context_tokens]


def _random_voice(codec: WindowDecoder, gen: torch.Generator) -> VoiceConditioning:
    count = getattr(codec, "global_token_count", 0)
    vocab = getattr(codec, "global_vocab_size", 1)
    return VoiceConditioning(global_ids=tuple(torch.randint(0, vocab, (count,), generator=gen).tolist()))


def measure_context(
    codec: WindowDecoder,
    tolerance: float,
    *,
    window_tokens: int = 10,
    max_context: int | None = None,
    seed: int = 0,
    voice: VoiceConditioning | None = None,
) -> ContextMeasurement:
    """Smallest one-sided context c whose window decode matches the full decode within `tolerance`.

    A random token sequence is decoded in full; then its middle `window_tokens` tokens are decoded
    with c tokens on each side and compared sample by sample. c is found by binary search, assuming
    the error does not grow with more context; it never exceeds the codec's receptive field (where
    the decode is exact) nor `max_context`. If even the cap misses the tolerance, the cap is
    returned and `error` shows by how much. `voice` defaults to random valid global ids for codecs
    that expose `global_token_count`/`global_vocab_size`.
    """
    if window_tokens < 1:
        raise ValueError("window_tokens must be >= 1")
    cap = (
        codec.receptive_field_tokens
        if max_context is None
        else min(max_context, codec.receptive_field_tokens)
    )
    cap = max(cap, 0)
    gen = torch.Generator().manual_seed(seed)
    if voice is None:
        voice = _random_voice(codec, gen)
    conditioning = codec.condition(voice).unsqueeze(0)

    start = cap + _MARGIN_TOKENS
    tokens = torch.randint(0, codec.token_vocab_size, (1, window_tokens + 2 * start), generator=gen)
    spt = codec.samples_per_token
    reference = codec.decode(tokens, conditioning)[0, start * spt : (start + window_tokens) * spt]

    errors: dict[int, float] = {}

    def error_at(context: int) -> float:
        if context not in errors:
            window = tokens[:, start - context : start + window_tokens + context]
            audio = codec.decode(window, conditioning)[0, context * spt : (context + window_tokens) * spt]
            errors[context] = float((audio - reference).abs().max())
        return errors[context]

    if error_at(cap) > tolerance:
        return ContextMeasurement(context_tokens=cap, errors=errors)
    low, high = 0, cap
    while low < high:
        mid = (low + high) // 2
        if error_at(mid) <= tolerance:
            high = mid
        else:
            low = mid + 1
    return ContextMeasurement(context_tokens=high, errors=errors)
