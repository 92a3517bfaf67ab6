"""Sample format helpers shared by the gateway and the client."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile


def f32_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")


def pcm16_from_f32(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] to signed 16-bit little-endian, clipped and rounded."""
    scaled = np.clip(samples, -1.0, 1.0) * 32767.0
    return np.rint(scaled).astype("<i2").tobytes()


def write_wav_pcm16(path: Path, pcm16: bytes, sample_rate: int) -> None:
    soundfile.write(str(path), np.frombuffer(pcm16, dtype="<i2"), sample_rate, subtype="PCM_16")
