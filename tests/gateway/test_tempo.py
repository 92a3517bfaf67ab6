"""The streamed tempo change: `speed` times as fast, the same pitch, however the audio is chunked."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from voxserve.gateway.tempo import MAX_SPEED, MIN_SPEED, Tempo, stages

RATE = 24000
TONE_HZ = 220.0
SECONDS = 2.0


def tone(seconds: float = SECONDS, hz: float = TONE_HZ) -> npt.NDArray[np.float32]:
    t = np.arange(int(RATE * seconds)) / RATE
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def stretched(pcm: npt.NDArray[np.float32], speed: float, seed: int = 0) -> npt.NDArray[np.float32]:
    """`pcm` through a Tempo in uneven chunks (1 to 2000 samples, some empty), then its tail."""
    rng = np.random.default_rng(seed)
    tempo = Tempo(RATE, speed)
    out, start = [], 0
    while start < len(pcm):
        size = int(rng.integers(0, 2000))
        out.append(tempo.process(pcm[start : start + size]))
        start += size
    out.append(tempo.finish())
    assert all(chunk.dtype == np.float32 and chunk.ndim == 1 for chunk in out)
    return np.concatenate(out)


def dominant_hz(pcm: npt.NDArray[np.float32]) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / RATE)[int(spectrum.argmax())])


@pytest.mark.parametrize("speed", [0.25, 0.5, 0.8, 1.5, 2.0, 4.0])
def test_output_lasts_input_over_speed(speed: float) -> None:
    pcm = tone()
    out = stretched(pcm, speed, seed=int(speed * 100))
    assert len(out) == pytest.approx(len(pcm) / speed, rel=0.03)


@pytest.mark.parametrize("speed", [0.25, 0.8, 2.0, 4.0])
def test_pitch_is_kept(speed: float) -> None:
    out = stretched(tone(), speed)
    assert dominant_hz(out) == pytest.approx(TONE_HZ, rel=0.02)
    assert np.abs(out).max() == pytest.approx(0.5, rel=0.2), "the tone keeps its level"


def test_chunking_does_not_change_the_length() -> None:
    pcm = tone()
    whole = Tempo(RATE, 1.5)
    at_once = np.concatenate([whole.process(pcm), whole.finish()])
    assert abs(len(stretched(pcm, 1.5, seed=3)) - len(at_once)) <= RATE // 100


@pytest.mark.parametrize("speed", [0.0, 0.249, 4.01, -1.0, 100.0])
def test_speeds_out_of_range_are_refused(speed: float) -> None:
    with pytest.raises(ValueError, match=f"outside {MIN_SPEED}..{MAX_SPEED}"):
        Tempo(RATE, speed)


@pytest.mark.parametrize("speed", [MIN_SPEED, MAX_SPEED])
def test_the_range_ends_are_accepted(speed: float) -> None:
    Tempo(RATE, speed)


def test_below_half_speed_takes_two_stages_multiplying_to_the_speed() -> None:
    for speed in (0.25, 0.3, 0.49):
        parts = stages(speed)
        assert len(parts) == 2
        assert parts[0] * parts[1] == pytest.approx(speed)
        assert all(0.5 <= part <= 1 for part in parts), "each stage within atempo's best range"
    for speed in (0.5, 0.8, 1.0, 2.0, 4.0):
        assert stages(speed) == [speed]


def test_empty_input_gives_nothing() -> None:
    tempo = Tempo(RATE, 2.0)
    assert len(tempo.process(np.zeros(0, dtype=np.float32))) == 0
    assert len(tempo.finish()) == 0
