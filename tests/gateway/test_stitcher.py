"""Stitching segments: exact sample counts, equal-gain fades, and any chunking giving the same stream."""

from __future__ import annotations

import random

import numpy as np
import pytest

from voxserve.gateway.stitcher import Stitcher, fade_in_gains


def stitch(
    segments: list[np.ndarray], fade: int, chunk_sizes: random.Random | None = None, hints: bool = False
) -> tuple[np.ndarray, Stitcher]:
    """Feeds the segments in random-size chunks (whole when no rng) and returns the stitched stream.

    `hints`: each chunk says a random part of what is still to come of its segment."""
    stitcher = Stitcher(fade)
    out = []
    for index, segment in enumerate(segments):
        if index:
            out.append(stitcher.next_segment())
        position = 0
        while position < segment.size:
            size = chunk_sizes.randint(1, 700) if chunk_sizes else segment.size
            remaining = max(0, segment.size - position - size)
            more = chunk_sizes.randint(0, remaining) if hints and chunk_sizes else 0
            out.append(stitcher.add(segment[position : position + size], more))
            position += size
    out.append(stitcher.finish())
    return np.concatenate(out), stitcher


def reference(segments: list[np.ndarray], fade: int) -> np.ndarray:
    """Overlap-add written out directly: each seam mixes min(fade, both sides) samples."""
    stream = np.zeros(0, np.float32)
    for segment in segments:
        if not segment.size:
            continue
        length = min(fade, stream.size, segment.size)
        gains = fade_in_gains(length)
        head = stream[: stream.size - length]
        mixed = stream[stream.size - length :] * (1 - gains) + segment[:length] * gains
        stream = np.concatenate([head, mixed, segment[length:]])
    return stream


def test_fade_gains_sum_to_one_and_rise() -> None:
    gains = fade_in_gains(800)
    assert np.all(np.diff(gains) > 0)
    assert 0 < gains[0] < 0.01 and 0.99 < gains[-1] < 1
    assert np.array_equal(gains + (1 - gains), np.ones(800, np.float32))


def test_exact_sample_count_with_one_fade_per_seam() -> None:
    rng = np.random.default_rng(0)
    lengths = [16000, 9000, 20000, 4000]
    segments = [rng.standard_normal(n).astype(np.float32) for n in lengths]
    out, stitcher = stitch(segments, 800)
    assert out.size == sum(lengths) - 3 * 800
    assert stitcher.samples_out == out.size
    assert len(stitcher.seams) == 3


def test_untouched_outside_the_fades_and_first_and_last_samples_kept() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(5000).astype(np.float32), rng.standard_normal(6000).astype(np.float32)
    out, stitcher = stitch([a, b], 800)
    assert np.array_equal(out[:4200], a[:4200])
    assert np.array_equal(out[5000:], b[800:])
    assert stitcher.seams == [4200]
    gains = fade_in_gains(800)
    np.testing.assert_allclose(out[4200:5000], a[4200:] * (1 - gains) + b[:800] * gains, atol=1e-7)


def test_constant_level_does_not_dip_across_a_seam() -> None:
    out, _ = stitch([np.full(3000, 0.5, np.float32), np.full(3000, 0.5, np.float32)], 800)
    np.testing.assert_allclose(out, 0.5, atol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_any_chunking_and_short_segments_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    # Segments shorter than the fade, empty ones and long ones, in any order.
    lengths = [rng.choice([0, 1, 37, 500, 799, 800, 801, 3000, 12000]) for _ in range(7)]
    segments = [nrng.standard_normal(n).astype(np.float32) for n in lengths]
    whole, _ = stitch(segments, 800)
    chunked, _ = stitch(segments, 800, rng)
    hinted, _ = stitch(segments, 800, rng, hints=True)
    expected = reference(segments, 800)
    assert whole.size == chunked.size == hinted.size == expected.size
    np.testing.assert_allclose(whole, expected, atol=1e-6)
    np.testing.assert_allclose(chunked, expected, atol=1e-6)
    np.testing.assert_allclose(hinted, expected, atol=1e-6)


def test_samples_known_not_to_be_in_the_last_fade_go_out_at_once() -> None:
    stitcher = Stitcher(800)
    first = np.ones(3200, np.float32)
    assert stitcher.add(first).size == 2400, "without a hint, the newest fade-length waits"
    stitcher = Stitcher(800)
    assert stitcher.add(first, more=4480).size == 3200, "14 more tokens are coming: nothing waits"
    assert stitcher.add(first, more=300).size == 3200 - 500, "only what the fade may still need waits"
    assert stitcher.add(first, more=0).size == 3200 + 500 - 800
    with pytest.raises(ValueError, match="more must be >= 0"):
        stitcher.add(first, more=-1)


def test_zero_fade_concatenates() -> None:
    segments = [np.arange(10, dtype=np.float32), np.arange(5, dtype=np.float32)]
    out, _ = stitch(segments, 0)
    assert np.array_equal(out, np.concatenate(segments))
