"""Reference audio as Spark-TTS prepares it for enrolment: volume normalisation and the 6 s clip.

Both follow upstream's numpy code step for step, in float64, quirks included (`sparktts/utils/
audio.py::audio_volume_normalize` and `BiCodecTokenizer.get_ref_clip`).
"""

from __future__ import annotations

import numpy as np

VOLUME_COEFF = 0.2
QUIET_PEAK = 0.1
"""A reference whose peak is below this is first scaled so that its peak is this."""
QUIET_FLOOR = 1e-3
AUDIBLE = 0.01
"""Only magnitudes above this count towards the loudness estimate."""
MIN_AUDIBLE_SAMPLES = 10
GAIN_RANGE = (0.1, 10.0)
REF_SEGMENT_SECONDS = 6


def normalize_volume(audio: np.ndarray, coeff: float = VOLUME_COEFF) -> np.ndarray:
    """Scale so that the loud end of the magnitudes (their 90th..99th percentile mean) is `coeff`.

    As upstream: the sorted magnitudes are taken once, before the quiet-input boost, and are not
    recomputed after it; with 10 or fewer samples above 0.01 the (maybe boosted) input is returned
    as it is; the gain is clipped to [0.1, 10]; a result whose peak exceeds 1 is peak-normalised.
    """
    x = np.asarray(audio, dtype=np.float64)
    magnitudes = np.sort(np.abs(x))
    if magnitudes[-1] < QUIET_PEAK:
        x = x / max(magnitudes[-1], QUIET_FLOOR) * QUIET_PEAK
    magnitudes = magnitudes[magnitudes > AUDIBLE]
    n = magnitudes.shape[0]
    if n <= MIN_AUDIBLE_SAMPLES:
        return x
    volume = np.mean(magnitudes[int(0.9 * n) : int(0.99 * n)])
    x = x * np.clip(coeff / volume, GAIN_RANGE[0], GAIN_RANGE[1])
    peak = np.max(np.abs(x))
    if peak > 1:
        x = x / peak
    return x


def ref_clip_samples(sample_rate: int, samples_per_token: int, seconds: float = REF_SEGMENT_SECONDS) -> int:
    """The speaker clip's length: `seconds` of audio, down to whole tokens (96000 for Spark)."""
    return int(sample_rate * seconds) // samples_per_token * samples_per_token


def reference_clip(audio: np.ndarray, length: int) -> np.ndarray:
    """The first `length` samples; a shorter reference is repeated whole until it is long enough."""
    if len(audio) == 0:
        raise ValueError("reference audio is empty")
    if length > len(audio):
        audio = np.tile(audio, length // len(audio) + 1)
    return audio[:length]
