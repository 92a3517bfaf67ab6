"""Sample format helpers: float to PCM16, float bytes, and WAV writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from voxserve.gateway.audio import f32_from_bytes, pcm16_from_f32, write_wav_pcm16


def _pcm(samples: list[float]) -> list[int]:
    data = pcm16_from_f32(np.asarray(samples, dtype=np.float32))
    return np.frombuffer(data, dtype="<i2").tolist()


def test_full_scale_maps_to_symmetric_extremes() -> None:
    assert _pcm([1.0, -1.0, 0.0]) == [32767, -32767, 0]


def test_out_of_range_is_clipped_not_wrapped() -> None:
    assert _pcm([2.0, -2.0, 1.5, -100.0]) == [32767, -32767, 32767, -32767]


def test_rounds_to_nearest_even() -> None:
    # 0.5 * 32767 = 16383.5, and rint rounds half to even.
    assert _pcm([0.5, -0.5]) == [16384, -16384]
    # 1/32767 is exactly one step; slightly less still rounds to one step.
    assert _pcm([1 / 32767, 0.9 / 32767, 0.4 / 32767]) == [1, 1, 0]


def test_output_is_little_endian_int16_with_length_preserved() -> None:
    samples = np.linspace(-1, 1, 101, dtype=np.float32)
    data = pcm16_from_f32(samples)
    assert isinstance(data, bytes)
    assert len(data) == 2 * len(samples)
    assert data[:2] == (-32767).to_bytes(2, "little", signed=True)


def test_empty_input_gives_empty_bytes() -> None:
    assert pcm16_from_f32(np.zeros(0, dtype=np.float32)) == b""


def test_f32_from_bytes_round_trip() -> None:
    samples = np.array([0.0, 0.25, -1.0, 1e-7, 3.5], dtype=np.float32)
    out = f32_from_bytes(samples.astype("<f4").tobytes())
    assert out.dtype == np.dtype("<f4")
    np.testing.assert_array_equal(out, samples)


def test_f32_from_bytes_reads_little_endian() -> None:
    assert f32_from_bytes(b"\x00\x00\x80\x3f").tolist() == [1.0]


def test_f32_from_bytes_rejects_partial_sample() -> None:
    with pytest.raises(ValueError):
        f32_from_bytes(b"\x00\x00\x80")


@pytest.mark.parametrize("rate", [16000, 24000])
def test_write_wav_pcm16_reads_back_identical(tmp_path: Path, rate: int) -> None:
    rng = np.random.default_rng(0)
    pcm = pcm16_from_f32(rng.uniform(-1.2, 1.2, size=1234).astype(np.float32))
    path = tmp_path / "out.wav"
    write_wav_pcm16(path, pcm, rate)
    data, read_rate = soundfile.read(str(path), dtype="int16")
    info = soundfile.info(str(path))
    assert read_rate == rate
    assert info.channels == 1
    assert info.subtype == "PCM_16"
    np.testing.assert_array_equal(data, np.frombuffer(pcm, dtype="<i2"))
