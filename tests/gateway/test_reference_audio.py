"""Reference audio for enrolment: real files of every accepted format, built here with libsndfile
and FFmpeg's encoders, decoded, checked and resampled to the encoder's rate."""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import av
import grpc
import numpy as np
import numpy.typing as npt
import pytest
import soundfile
import soxr

from voxserve.common.status import InvalidArgument
from voxserve.families.family import Enrolment
from voxserve.families.spark import ENROLMENT
from voxserve.gateway.reference_audio import (
    Reference,
    ReferenceAudioError,
    ReferenceLimits,
    read_reference,
)
from voxserve.gateway.reference_decode import (
    SOUNDFILE_FORMATS,
    TooLong,
    decode_av,
    decode_soundfile,
    sniff,
)
from voxserve.v1 import speech_pb2

F64 = npt.NDArray[np.float64]
FILE, PCM16 = speech_pb2.REFERENCE_FORMAT_FILE, speech_pb2.REFERENCE_FORMAT_PCM16
LIMITS = ReferenceLimits()
MEAN = Enrolment(
    sample_rate=16000,
    channel_mix="mean",
    encoder_files=(),
    voice_parts=ENROLMENT.voice_parts,
)


def voiced(rate: int, seconds: float, channels: int = 1, seed: int = 0) -> F64:
    """Speech-like audio: harmonics of a gliding 110..180 Hz pitch under two formant bumps,
    in syllable-rate bursts, a little noise; each channel a different speaker. (frames, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(rate * seconds)) / rate
    columns = []
    for channel in range(channels):
        f0 = 110 + 35 * channel + 35 * (1 + np.sin(2 * np.pi * 0.7 * t))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        x = np.zeros_like(t)
        for k in range(1, 30):
            hz = k * f0.mean()
            gain = np.exp(-(((hz - 700) / 300) ** 2)) + 0.6 * np.exp(-(((hz - 1200) / 400) ** 2)) + 0.05
            x += gain / k**0.5 * np.sin(k * phase)
        envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t + channel)
        x = x * envelope + 0.01 * rng.standard_normal(len(t))
        columns.append(0.4 * x / np.abs(x).max())
    return np.stack(columns, axis=1)


def with_soundfile(x: F64, rate: int, format: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    with soundfile.SoundFile(buffer, "w", rate, x.shape[1], format=format, subtype=subtype) as file:
        # One-second writes: libsndfile's Vorbis encoder crashes on a single large write.
        for start in range(0, len(x), rate):
            file.write(x[start : start + rate])
    return buffer.getvalue()


def with_pyav(x: F64, rate: int, container: str, codec: str) -> bytes:
    layout = "mono" if x.shape[1] == 1 else "stereo"
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as output:
        stream = output.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(x.T, dtype=np.float32), format="fltp", layout=layout
        )
        frame.sample_rate, frame.pts = rate, 0
        output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def wav_pcm16(x: F64, rate: int) -> bytes:
    return with_soundfile(x, rate, "WAV", "PCM_16")


Builder = Callable[[F64, int], bytes]
LOSSLESS: dict[str, Builder] = {
    "wav": wav_pcm16,
    "wav-float": lambda x, rate: with_soundfile(x, rate, "WAV", "FLOAT"),
    "flac": lambda x, rate: with_soundfile(x, rate, "FLAC", "PCM_24"),
}
LOSSY: dict[str, Builder] = {
    "ogg-vorbis": lambda x, rate: with_soundfile(x, rate, "OGG", "VORBIS"),
    "ogg-opus": lambda x, rate: with_soundfile(x, rate, "OGG", "OPUS"),
    "mp3": lambda x, rate: with_soundfile(x, rate, "MP3", "MPEG_LAYER_III"),
    "ogg-opus-ffmpeg": lambda x, rate: with_pyav(x, rate, "ogg", "libopus"),
    "mp3-ffmpeg-id3": lambda x, rate: with_pyav(x, rate, "mp3", "libmp3lame"),
}
KINDS = {"wav": "WAV", "flac": "FLAC", "ogg-vorbis": "Ogg Vorbis", "ogg-opus": "Ogg Opus", "mp3": "MP3"}


def kind_of(name: str) -> str:
    return next(kind for prefix, kind in KINDS.items() if name.startswith(prefix))


def error(data: bytes, format: int = FILE, sample_rate: int = 0, **limits: float) -> str:
    with pytest.raises(ReferenceAudioError) as raised:
        read_reference(data, format, sample_rate, ENROLMENT, ReferenceLimits(**limits))
    return str(raised.value)


def correlation(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


@pytest.mark.parametrize("name", [*LOSSLESS, *LOSSY])
def test_each_format_decodes_to_its_duration_at_the_encoder_rate(name: str) -> None:
    rate = 48000 if "opus" in name else 44100  # Opus codes at 48 kHz; the others keep their rate
    x = voiced(rate, 3.0)
    data = {**LOSSLESS, **LOSSY}[name](x, rate)
    assert sniff(data) == kind_of(name)

    reference = read_reference(data, FILE, 0, ENROLMENT, LIMITS)

    assert isinstance(reference, Reference)
    assert reference.sample_rate == 16000
    assert reference.samples.dtype == np.float32 and reference.samples.ndim == 1
    assert reference.seconds == pytest.approx(3.0, abs=1e-9)
    assert len(reference.samples) == 48000
    expected = soxr.resample(x[:, 0], rate, 16000, quality="VHQ")
    if name in LOSSLESS:
        np.testing.assert_allclose(reference.samples, expected, atol=1e-4)
    else:
        assert correlation(reference.samples, expected) > 0.95


@pytest.mark.parametrize("name", [*LOSSLESS, *LOSSY])
def test_libsndfile_and_pyav_decode_alike(name: str) -> None:
    """The PyAV decoder stands in where libsndfile lacks a format; both give the same audio."""
    x = voiced(48000, 2.5, channels=2)
    data = {**LOSSLESS, **LOSSY}[name](x, 48000)
    for mix in ("first", "mean"):
        by_libsndfile = decode_soundfile(data, mix, 60.0)
        by_pyav = decode_av(data, mix, 60.0)
        assert by_libsndfile.sample_rate == by_pyav.sample_rate == 48000
        assert len(by_libsndfile.samples) == len(by_pyav.samples) == len(x)
        # libsndfile and FFmpeg each have their own MP3 and Vorbis decoders
        tolerance = 1e-9 if name in LOSSLESS else 1e-2
        interior = slice(2000, -2000)
        np.testing.assert_allclose(by_libsndfile.samples[interior], by_pyav.samples[interior], atol=tolerance)


def test_the_installed_libsndfile_decodes_every_accepted_format() -> None:
    """soundfile's wheels bundle libsndfile 1.2 with Opus and MP3; PyAV covers an older one."""
    assert {"WAV", "FLAC", "Ogg Vorbis", "Ogg Opus", "MP3"} <= SOUNDFILE_FORMATS


def test_a_16khz_16bit_wav_passes_through_bit_exact() -> None:
    values = np.round(voiced(16000, 2.5)[:, 0] * 32767).astype(np.int16)
    data = wav_pcm16(values[:, None] / 32768.0, 16000)
    reference = read_reference(data, FILE, 0, ENROLMENT, LIMITS)
    assert np.array_equal(reference.samples, (values / 32768.0).astype(np.float32))


def test_44100_resamples_with_soxr_vhq_to_its_length() -> None:
    x = voiced(44100, 4.321)
    reference = read_reference(with_soundfile(x, 44100, "WAV", "DOUBLE"), FILE, 0, ENROLMENT, LIMITS)
    assert len(reference.samples) == int(len(x) / (44100 / 16000) + 0.5)
    expected = soxr.resample(x[:, 0], 44100, 16000, quality="VHQ").astype(np.float32)
    assert np.array_equal(reference.samples, expected)
    assert reference.seconds == pytest.approx(len(x) / 44100)


def test_stereo_keeps_the_first_channel_or_the_mean_as_the_family_says() -> None:
    x = voiced(16000, 2.5, channels=2)
    data = with_soundfile(x, 16000, "WAV", "DOUBLE")
    first = read_reference(data, FILE, 0, ENROLMENT, LIMITS)
    mean = read_reference(data, FILE, 0, MEAN, LIMITS)
    assert ENROLMENT.channel_mix == "first"
    assert np.array_equal(first.samples, x[:, 0].astype(np.float32))
    assert np.array_equal(mean.samples, x.mean(axis=1).astype(np.float32))
    assert correlation(first.samples, mean.samples) < 0.9


def test_pcm16_at_its_stated_rate() -> None:
    values = np.round(voiced(24000, 2.0)[:, 0] * 32767).astype("<i2")
    reference = read_reference(values.tobytes(), PCM16, 24000, ENROLMENT, LIMITS)
    assert reference.seconds == pytest.approx(2.0)
    expected = soxr.resample(values / 32768.0, 24000, 16000, quality="VHQ").astype(np.float32)
    assert np.array_equal(reference.samples, expected)
    same_rate = read_reference(values.tobytes(), PCM16, 16000, ENROLMENT, LIMITS)
    assert np.array_equal(same_rate.samples, (values / 32768.0).astype(np.float32))
    assert same_rate.seconds == pytest.approx(3.0)


def test_a_minute_of_48khz_stereo_reads_in_well_under_a_second() -> None:
    data = wav_pcm16(np.tile(voiced(48000, 1.0, channels=2), (60, 1)), 48000)
    start = time.perf_counter()
    reference = read_reference(data, FILE, 0, MEAN, LIMITS)
    elapsed = time.perf_counter() - start
    assert len(reference.samples) == 60 * 16000
    assert elapsed < 1.0  # about 0.05 s on one core


def test_the_error_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgument) as raised:
        read_reference(b"hello", FILE, 0, ENROLMENT, LIMITS)
    assert isinstance(raised.value, ValueError)
    assert raised.value.status == grpc.StatusCode.INVALID_ARGUMENT


NOT_ACCEPTED: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "text": lambda: b"This is a text file, not a recording.\n" * 100,
    "riff-not-wave": lambda: b"RIFF" + np.random.default_rng(1).bytes(4000),
    "riff-wave-garbage": lambda: b"RIFF\x00\x10\x00\x00WAVE" + np.random.default_rng(2).bytes(4000),
    "ogg-garbage": lambda: b"OggS" + np.random.default_rng(3).bytes(4000),
    "mp4-aac": lambda: with_pyav(voiced(44100, 2.5), 44100, "mp4", "aac"),
    "adts-aac": lambda: with_pyav(voiced(44100, 2.5), 44100, "adts", "aac"),  # MP3's sync word
    "ogg-flac": lambda: with_pyav(voiced(44100, 2.5), 44100, "ogg", "flac"),
    "aiff": lambda: with_soundfile(voiced(44100, 2.5), 44100, "AIFF", "PCM_16"),
}


@pytest.mark.parametrize("name", NOT_ACCEPTED)
def test_bytes_of_no_accepted_format_are_refused(name: str) -> None:
    message = error(NOT_ACCEPTED[name]())
    assert message.startswith("audio is ")
    assert message.endswith("WAV, FLAC, Ogg (Opus or Vorbis) or MP3 file") or message.endswith(
        "accepted: WAV, FLAC, Ogg (Opus or Vorbis) or MP3"
    )


def test_a_truncated_file_of_a_known_format_is_not_readable() -> None:
    data = with_soundfile(voiced(44100, 3.0), 44100, "FLAC", "PCM_16")
    assert "not a readable FLAC file" in error(data[:30])


@pytest.mark.parametrize("name", ["wav", "ogg-opus"])
def test_too_short(name: str) -> None:
    rate = 48000
    data = {**LOSSLESS, **LOSSY}[name](voiced(rate, 1.5), rate)
    assert error(data) == "audio lasts 1.50 s; allowed 2 .. 60 s"


def test_too_long_by_its_header_is_refused_before_decoding() -> None:
    data = with_soundfile(np.zeros((61 * 8000, 1)), 8000, "FLAC", "PCM_16")
    assert error(data) == "audio lasts 61.00 s; allowed 2 .. 60 s"
    assert (
        error(wav_pcm16(voiced(16000, 3.5), 16000), max_seconds=3.0) == "audio lasts 3.50 s; allowed 2 .. 3 s"
    )


def test_decoding_stops_at_the_limit() -> None:
    data = with_pyav(voiced(48000, 4.0), 48000, "ogg", "libopus")
    with pytest.raises(TooLong) as raised:
        decode_av(data, "first", 3.0)
    assert raised.value.seconds is None
    assert len(decode_av(data, "first", 4.0).samples) == 4 * 48000


def test_pcm16_too_short_and_too_long() -> None:
    assert error(b"\x01\x00" * 15000, PCM16, 8000) == "audio lasts 1.88 s; allowed 2 .. 60 s"
    assert error(b"\x00\x10" * (8000 * 60 + 1), PCM16, 8000) == "audio lasts 60.00 s; allowed 2 .. 60 s"
    assert error(b"", PCM16, 8000) == "audio holds no samples; allowed 2 .. 60 s"


@pytest.mark.parametrize("level", [0.0, 10 ** (-61 / 20)])
def test_silence(level: float) -> None:
    x = level * np.sign(voiced(16000, 3.0))
    message = error(with_soundfile(x, 16000, "WAV", "FLOAT"))
    assert message.startswith("audio is silent: its peak is ")
    assert message.endswith("dBFS; it must reach -60 dBFS")


def test_quiet_audio_above_the_silence_floor_passes() -> None:
    x = 10 ** (-55 / 20) * voiced(16000, 3.0) / 0.4
    assert read_reference(with_soundfile(x, 16000, "WAV", "FLOAT"), FILE, 0, ENROLMENT, LIMITS)


def test_clipping() -> None:
    loud = voiced(16000, 3.0)
    x = np.clip(loud / np.quantile(np.abs(loud), 0.3), -1, 1)  # about 70% at full scale
    clipped = np.count_nonzero(np.abs(np.round(x * 32767) / 32768) >= 0.99) / len(x)
    assert clipped > 0.5
    message = error(wav_pcm16(x, 16000))
    assert message == f"audio is clipped: {clipped:.0%} of its samples are at full scale; the limit is 50%"
    loud_but_not_clipped = np.clip(1.2 * voiced(16000, 3.0) / 0.4, -1, 1)
    assert read_reference(wav_pcm16(loud_but_not_clipped, 16000), FILE, 0, ENROLMENT, LIMITS)


def test_non_finite_samples() -> None:
    x = voiced(16000, 3.0)
    x[100:103, 0] = [np.nan, np.inf, -np.inf]
    assert (
        error(with_soundfile(x, 16000, "WAV", "FLOAT")) == "audio has 3 non-finite samples (NaN or infinity)"
    )


def test_a_file_at_an_odd_rate() -> None:
    message = error(wav_pcm16(voiced(4000, 3.0), 4000))
    assert message == "audio is a WAV file at 4000 Hz; allowed 8000..192000 Hz"


def test_sample_rate_is_for_pcm16_only() -> None:
    data = wav_pcm16(voiced(16000, 3.0), 16000)
    assert error(data, FILE, 16000) == (
        "sample_rate is 16000; it must be 0 for REFERENCE_FORMAT_FILE (files carry their rate)"
    )


@pytest.mark.parametrize("rate", [0, 7999, 48001, -16000])
def test_pcm16_needs_a_rate_in_range(rate: int) -> None:
    message = error(b"\x00\x10" * 48000, PCM16, rate)
    assert message == f"sample_rate {rate} is not allowed for REFERENCE_FORMAT_PCM16; allowed 8000..48000"


def test_pcm16_needs_whole_samples() -> None:
    message = error(b"\x00\x10" * 48000 + b"\x00", PCM16, 16000)
    assert message.startswith("audio has 96001 bytes; REFERENCE_FORMAT_PCM16 needs whole 16-bit samples")


def test_an_unknown_format() -> None:
    message = error(b"\x00\x10" * 48000, 7, 0)
    assert message == "format 7 is not supported; supported: REFERENCE_FORMAT_FILE, REFERENCE_FORMAT_PCM16"
