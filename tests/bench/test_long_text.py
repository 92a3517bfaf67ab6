"""The long-text benchmark's own arithmetic: its text and its seam level measure."""

from __future__ import annotations

import numpy as np

from bench.long_text import long_text, seam_levels
from voxserve.gateway.segmenter import split_text


def test_long_text_is_whole_sentences_within_the_length() -> None:
    text = long_text(2000)
    assert 1800 < len(text) <= 2000
    assert text.endswith((".", "!", "?"))
    assert len(split_text(text, 250)) >= 8


def test_seam_levels_are_flat_for_a_steady_signal_and_see_a_dip() -> None:
    # 400 Hz at 16 kHz: every 20 ms window and the 50 ms fade hold whole periods.
    steady = (0.3 * np.sin(2 * np.pi * 400 * np.arange(16000) / 16000)).astype(np.float32)
    assert seam_levels(steady, [8000], 800, 320)[0] <= 0.01
    dipped = steady.copy()
    dipped[8000:8800] *= 0.5
    assert 6.0 <= seam_levels(dipped, [8000], 800, 320)[0] <= 6.1  # half the amplitude: 6.02 dB
