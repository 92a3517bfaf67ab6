"""Reference audio for enrolling a voice: decode the upload, check it, and convert it to mono
float32 at the family's encoder rate (`Enrolment.sample_rate`).

Checks, in order, each failing with the field it concerns and the limit:
- format and sample_rate: FILE takes no sample_rate (a file carries its own); PCM16 needs one in
  8000..48000 and an even number of bytes. A file's own rate must be in 8000..192000.
- audio: WAV, FLAC, Ogg (Opus or Vorbis) or MP3, recognised from its bytes, and decodable.
- non-finite samples (a float WAV can hold NaN or infinity).
- duration within [min_seconds, max_seconds] of the upload as decoded.
- silence: the peak is below -60 dBFS. That is where upstream Spark's volume normalisation stops
  amplifying (it divides by max(peak, 1e-3)), so quieter audio cannot reach its working level.
  A click in otherwise silent audio passes; the check catches empty and muted recordings.
- clipping: more than half of the samples are at full scale (|x| >= 0.99, -0.09 dBFS, which
  also catches 8-bit files, whose largest value is 127/128).
Multi-channel audio is mixed down as the family's upstream loader does, before the checks.
Resampling is soxr at the family's quality (Spark "VHQ", Chatterbox and s3 "HQ", as their
upstream loaders), float64 in and out, then float32; where the family's loader fixes the length
(librosa: ceil(n x rate / original rate)) the output is padded or cut to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr

from voxserve.common.status import InvalidArgument
from voxserve.families.family import Enrolment
from voxserve.gateway.reference_decode import ACCEPTED, DecodeError, TooLong, decode
from voxserve.v1 import speech_pb2

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

PCM16_RATES = (8000, 48000)
FILE_RATES = (8000, 192000)
SILENCE_DBFS = -60.0
FULL_SCALE = 0.99
MAX_CLIPPED_FRACTION = 0.5
_FORMAT_NAMES = {
    speech_pb2.REFERENCE_FORMAT_FILE: "REFERENCE_FORMAT_FILE",
    speech_pb2.REFERENCE_FORMAT_PCM16: "REFERENCE_FORMAT_PCM16",
}


class ReferenceAudioError(InvalidArgument):
    """The upload cannot be a voice's reference; the message names the field and the limit.
    An `InvalidArgument`, so it ends a call with INVALID_ARGUMENT."""


@dataclass(frozen=True)
class ReferenceLimits:
    min_seconds: float = 2.0
    max_seconds: float = 60.0


@dataclass(frozen=True)
class Reference:
    samples: F32
    """Mono at `sample_rate`, the encoder's rate."""
    sample_rate: int
    seconds: float
    """Duration of the upload as decoded, at its own rate."""


def _pcm16(data: bytes, sample_rate: int, limits: ReferenceLimits) -> F64:
    low, high = PCM16_RATES
    if not low <= sample_rate <= high:
        raise ReferenceAudioError(
            f"sample_rate {sample_rate} is not allowed for REFERENCE_FORMAT_PCM16; allowed {low}..{high}"
        )
    if len(data) % 2:
        raise ReferenceAudioError(
            f"audio has {len(data)} bytes; REFERENCE_FORMAT_PCM16 needs whole 16-bit samples (an even count)"
        )
    if len(data) // 2 > limits.max_seconds * sample_rate:
        raise _too_long(len(data) // 2 / sample_rate, limits)
    return np.frombuffer(data, dtype="<i2") / 32768.0


def _duration_error(seconds: float | str, limits: ReferenceLimits) -> ReferenceAudioError:
    lasts = seconds if isinstance(seconds, str) else f"{seconds:.2f} s"
    allowed = f"{limits.min_seconds:g} .. {limits.max_seconds:g} s"
    return ReferenceAudioError(f"audio lasts {lasts}; allowed {allowed}")


def _too_long(seconds: float | None, limits: ReferenceLimits) -> ReferenceAudioError:
    """`seconds` None: decoding stopped at the limit, so the whole length is unknown."""
    return _duration_error(f"more than {limits.max_seconds:g} s" if seconds is None else seconds, limits)


def _file(data: bytes, sample_rate: int, enrolment: Enrolment, limits: ReferenceLimits) -> tuple[F64, int]:
    if sample_rate != 0:
        raise ReferenceAudioError(
            f"sample_rate is {sample_rate}; it must be 0 for REFERENCE_FORMAT_FILE (files carry their rate)"
        )
    if not data:
        raise ReferenceAudioError(f"audio is empty; expected a {ACCEPTED} file")
    try:
        kind, decoded = decode(data, enrolment.channel_mix, limits.max_seconds)
    except DecodeError as error:
        raise ReferenceAudioError(f"audio is {error}; accepted: {ACCEPTED}") from error
    except TooLong as error:
        raise _too_long(error.seconds, limits) from error
    low, high = FILE_RATES
    if not low <= decoded.sample_rate <= high:
        raise ReferenceAudioError(
            f"audio is a {kind} file at {decoded.sample_rate} Hz; allowed {low}..{high} Hz"
        )
    return decoded.samples, decoded.sample_rate


def _check(samples: F64, sample_rate: int, limits: ReferenceLimits) -> float:
    """The checks on the decoded mono audio; returns its duration in seconds."""
    seconds = len(samples) / sample_rate
    if not len(samples):
        raise ReferenceAudioError(
            f"audio holds no samples; allowed {limits.min_seconds:g} .. {limits.max_seconds:g} s"
        )
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise ReferenceAudioError(f"audio has {bad} non-finite samples (NaN or infinity)")
    if not limits.min_seconds <= seconds <= limits.max_seconds:
        raise _duration_error(seconds, limits)
    magnitude = np.abs(samples)
    peak = float(magnitude.max())
    peak_dbfs = 20 * np.log10(peak) if peak > 0 else -np.inf
    if peak_dbfs < SILENCE_DBFS:
        raise ReferenceAudioError(
            f"audio is silent: its peak is {peak_dbfs:.1f} dBFS; it must reach {SILENCE_DBFS:g} dBFS"
        )
    clipped = np.count_nonzero(magnitude >= FULL_SCALE) / len(samples)
    if clipped > MAX_CLIPPED_FRACTION:
        raise ReferenceAudioError(
            f"audio is clipped: {clipped:.0%} of its samples are at full scale; "
            f"the limit is {MAX_CLIPPED_FRACTION:.0%}"
        )
    return seconds


def read_reference(
    data: bytes, format: int, sample_rate: int, enrolment: Enrolment, limits: ReferenceLimits
) -> Reference:
    """The upload (`VoiceHeader.format` and `.sample_rate`, the audio chunks joined) as mono
    float32 at the encoder's rate; raises `ReferenceAudioError` for anything the checks reject."""
    if format == speech_pb2.REFERENCE_FORMAT_PCM16:
        samples, rate = _pcm16(data, sample_rate, limits), sample_rate
    elif format == speech_pb2.REFERENCE_FORMAT_FILE:
        samples, rate = _file(data, sample_rate, enrolment, limits)
    else:
        allowed = ", ".join(_FORMAT_NAMES.values())
        raise ReferenceAudioError(f"format {format} is not supported; supported: {allowed}")
    seconds = _check(samples, rate, limits)
    if rate != enrolment.sample_rate:
        count = math.ceil(samples.size * enrolment.sample_rate / rate)
        samples = soxr.resample(samples, rate, enrolment.sample_rate, quality=enrolment.resample_quality)
        if enrolment.exact_length:
            samples = np.pad(samples[:count], (0, max(0, count - samples.size)))
    return Reference(samples.astype(np.float32), enrolment.sample_rate, seconds)
