from __future__ import annotations

import pytest
import torch

from voxserve.vocoder.codecs.base import VoiceConditioning
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.receptive_field import ContextMeasurement, measure_context


def test_window_at_receptive_field_equals_full_decode_in_float64(tiny_bicodec64: BiCodec) -> None:
    context = tiny_bicodec64.receptive_field_tokens
    window, margin = 12, 5
    gen = torch.Generator().manual_seed(11)
    tokens = torch.randint(0, 8192, (1, window + 2 * (context + margin)), generator=gen)
    voice = VoiceConditioning(global_ids=tuple(torch.randint(0, 4096, (32,), generator=gen).tolist()))
    conditioning = tiny_bicodec64.condition(voice).unsqueeze(0)

    full = tiny_bicodec64.decode(tokens, conditioning)
    assert full.dtype == torch.float64
    start = context + margin
    part = tiny_bicodec64.decode(tokens[:, margin : start + window + context], conditioning)
    spt = tiny_bicodec64.samples_per_token
    expected = full[0, start * spt : (start + window) * spt]
    got = part[0, context * spt : (context + window) * spt]
    assert float((got - expected).abs().max()) <= 1e-12


def test_measure_context_is_exact_at_the_receptive_field_in_float64(tiny_bicodec64: BiCodec) -> None:
    result = measure_context(tiny_bicodec64, 1e-12)
    assert result.errors[tiny_bicodec64.receptive_field_tokens] <= 1e-12
    assert result.context_tokens <= tiny_bicodec64.receptive_field_tokens
    assert result.error <= 1e-12


@pytest.mark.parametrize("tolerance", [1e-3, 1e-4])
def test_measured_context_meets_tolerance_within_receptive_field(
    tiny_bicodec: BiCodec, tolerance: float
) -> None:
    result = measure_context(tiny_bicodec, tolerance)
    assert isinstance(result, ContextMeasurement)
    assert 0 <= result.context_tokens <= tiny_bicodec.receptive_field_tokens
    assert result.error <= tolerance
    # The search tried one token less (unless it is 0) and that missed the tolerance.
    if result.context_tokens > 0:
        assert result.errors[result.context_tokens - 1] > tolerance


def test_tighter_tolerance_needs_at_least_as_much_context(tiny_bicodec: BiCodec) -> None:
    loose = measure_context(tiny_bicodec, 1e-2)
    tight = measure_context(tiny_bicodec, 1e-4)
    assert loose.context_tokens <= tight.context_tokens


def test_max_context_caps_the_answer(tiny_bicodec: BiCodec) -> None:
    result = measure_context(tiny_bicodec, 1e-9, max_context=3)
    assert result.context_tokens == 3
    assert result.error > 1e-9
    assert max(result.errors) == 3


def test_measurement_is_deterministic(tiny_bicodec: BiCodec) -> None:
    assert measure_context(tiny_bicodec, 1e-3, seed=4) == measure_context(tiny_bicodec, 1e-3, seed=4)


def test_window_tokens_must_be_positive(tiny_bicodec: BiCodec) -> None:
    with pytest.raises(ValueError, match="window_tokens"):
        measure_context(tiny_bicodec, 1e-3, window_tokens=0)
