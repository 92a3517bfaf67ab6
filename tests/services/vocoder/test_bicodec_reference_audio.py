"""Reference preparation for Spark enrolment: upstream's volume normalisation and the 6 s clip."""

from __future__ import annotations

import numpy as np
import pytest

from voxserve.vocoder.codecs.bicodec.reference_audio import normalize_volume, ref_clip_samples, reference_clip


def upstream_normalize(audio: np.ndarray, coeff: float = 0.2) -> np.ndarray:
    """`sparktts/utils/audio.py::audio_volume_normalize`, transcribed (specs/spark-enrolment.md 1.3)."""
    temp = np.sort(np.abs(audio))
    if temp[-1] < 0.1:
        scaling_factor = max(temp[-1], 1e-3)
        audio = audio / scaling_factor * 0.1
    temp = temp[temp > 0.01]
    length = temp.shape[0]
    if length <= 10:
        return audio
    volume = np.mean(temp[int(0.9 * length) : int(0.99 * length)])
    audio = audio * np.clip(coeff / volume, a_min=0.1, a_max=10)
    max_value = np.max(np.abs(audio))
    if max_value > 1:
        audio = audio / max_value
    return audio


@pytest.mark.parametrize("scale", [0.003, 0.05, 0.3, 1.0, 4.0])
def test_equals_upstream_on_random_audio(scale: float) -> None:
    x = np.random.default_rng(int(scale * 1000)).standard_normal(16000) * scale
    out = normalize_volume(x)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, upstream_normalize(x))


def test_quiet_input_is_boosted_and_its_magnitudes_are_not_recomputed() -> None:
    # Peak 0.05 < 0.1: boosted x2. 100 samples at 0.008 become 0.016 (above 0.01), but the loudness
    # estimate still uses the original magnitudes, of which only 5 exceed 0.01: returned as boosted.
    x = np.concatenate([np.full(100, 0.008), np.full(5, 0.05), np.zeros(20)])
    np.testing.assert_array_equal(normalize_volume(x), x / 0.05 * 0.1)


def test_near_silence_is_boosted_by_at_most_100() -> None:
    x = np.full(50, 1e-5)
    np.testing.assert_array_equal(normalize_volume(x), x / 1e-3 * 0.1)


def test_ten_or_fewer_audible_samples_return_early() -> None:
    x = np.concatenate([np.full(10, 0.5), np.full(1000, 0.005)])
    np.testing.assert_array_equal(normalize_volume(x), x)
    x11 = np.concatenate([np.full(11, 0.5), np.full(1000, 0.005)])
    assert not np.array_equal(normalize_volume(x11), x11)


def test_gain_is_clipped_to_ten_and_to_a_tenth() -> None:
    quiet = np.concatenate([np.full(1000, 0.015), [0.1]])  # loudness 0.015: gain 13.3 -> 10
    np.testing.assert_allclose(normalize_volume(quiet), quiet * 10, rtol=0, atol=1e-15)
    loud = np.full(1000, 5.0) * np.resize([1, -1], 1000)  # loudness 5: gain 0.04 -> 0.1, peak 0.5
    np.testing.assert_allclose(normalize_volume(loud), loud * 0.1, rtol=0, atol=1e-15)


def test_result_is_peak_normalised_above_one() -> None:
    x = np.concatenate([np.full(1000, 0.05), [0.9]])  # loudness 0.05: gain 4, peak 3.6
    out = normalize_volume(x)
    assert np.max(np.abs(out)) == pytest.approx(1.0)
    np.testing.assert_allclose(out, x * 4 / 3.6, rtol=1e-12)


def test_clip_length_is_six_seconds_in_whole_tokens() -> None:
    assert ref_clip_samples(16000, 320) == 96000
    assert ref_clip_samples(16000, 320, seconds=6.01) == 96000
    assert ref_clip_samples(16000, 320, seconds=3) == 48000


def test_short_reference_is_tiled_whole() -> None:
    x = np.arange(1000, dtype=np.float64)
    clip = reference_clip(x, 96000)
    assert clip.shape == (96000,)
    np.testing.assert_array_equal(clip, np.tile(x, 97)[:96000])
    odd = np.arange(70001, dtype=np.float64)
    np.testing.assert_array_equal(reference_clip(odd, 96000), np.concatenate([odd, odd[:25999]]))


def test_long_reference_keeps_its_first_samples() -> None:
    x = np.arange(200000, dtype=np.float64)
    np.testing.assert_array_equal(reference_clip(x, 96000), x[:96000])
    np.testing.assert_array_equal(reference_clip(x[:96000], 96000), x[:96000])


def test_empty_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        reference_clip(np.zeros(0), 96000)
