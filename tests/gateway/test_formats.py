"""Output encodings, each decoded back by an independent decoder (libsndfile through soundfile)."""

from __future__ import annotations

import io
import re
import struct

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
import soxr

from voxserve.common.status import InvalidArgument
from voxserve.gateway.formats import OutputStream, Resampler, mulaw_from_f32, output_rate
from voxserve.v1 import speech_pb2

F32 = npt.NDArray[np.float32]
PCM16, WAV, MULAW, OGG_OPUS = speech_pb2.PCM16, speech_pb2.WAV, speech_pb2.MULAW, speech_pb2.OGG_OPUS


def sine(rate: int, n: int, hz: float = 440.0, amplitude: float = 0.5) -> F32:
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(n) / rate)).astype(np.float32)


def uneven_chunks(x: F32, seed: int = 0, largest: int = 3000) -> list[F32]:
    """An empty chunk first (it must be harmless), then random sizes from 0 to `largest`."""
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(rng.integers(0, largest, size=len(x) // (largest // 4) + 2))
    return [x[:0], *np.split(x, cuts[cuts < len(x)])]


def soxr_length(n: int, in_rate: int, out_rate: int) -> int:
    """libsoxr's total output length: n / io_ratio + .5, truncated, in double precision."""
    return int(n / (in_rate / out_rate) + 0.5)


def stream(out: OutputStream, x: F32, seed: int = 0) -> tuple[list[bytes], bytes]:
    return [out.write(c) for c in uneven_chunks(x, seed)], out.finish()


def peak_hz(x: npt.NDArray[np.number], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def snr_db(reference: npt.NDArray[np.floating], decoded: npt.NDArray[np.floating]) -> float:
    noise = np.asarray(decoded, dtype=np.float64) - reference
    return float(10 * np.log10(np.sum(np.square(reference, dtype=np.float64)) / np.sum(noise**2)))


@pytest.mark.parametrize(
    ("encoding", "requested", "native", "expected"),
    [
        (speech_pb2.AUDIO_ENCODING_UNSPECIFIED, 0, 24000, 24000),
        (PCM16, 0, 16000, 16000),
        (WAV, 0, 24000, 24000),
        (MULAW, 0, 24000, 8000),
        (OGG_OPUS, 0, 16000, 48000),
        (PCM16, 8000, 24000, 8000),
        (WAV, 48000, 16000, 48000),
        (MULAW, 22050, 24000, 22050),
        (OGG_OPUS, 12000, 24000, 12000),
    ],
)
def test_output_rate(encoding: int, requested: int, native: int, expected: int) -> None:
    assert output_rate(encoding, requested, native) == expected


@pytest.mark.parametrize(
    ("encoding", "requested", "message"),
    [
        (PCM16, 7000, "sample_rate 7000 is out of range; allowed 8000..48000"),
        (WAV, 48001, "sample_rate 48001 is out of range; allowed 8000..48000"),
        (MULAW, -8000, "sample_rate -8000 is out of range; allowed 8000..48000"),
        (
            OGG_OPUS,
            22050,
            "sample_rate 22050 is not allowed for OGG_OPUS; allowed: 8000, 12000, 16000, 24000, 48000",
        ),
        (9, 0, "encoding 9 is not supported; supported: PCM16, WAV, MULAW, OGG_OPUS"),
    ],
)
def test_output_rate_errors_name_field_and_limit(encoding: int, requested: int, message: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{re.escape(message)}$"):
        output_rate(encoding, requested, 24000)
    with pytest.raises(InvalidArgument):
        OutputStream(encoding, 24000, requested)


@pytest.mark.parametrize(
    ("in_rate", "out_rate"),
    [(24000, 8000), (16000, 48000), (24000, 22050), (16000, 8000), (16000, 44100), (24000, 24000)],
)
def test_resampler_streamed_length_and_samples(in_rate: int, out_rate: int) -> None:
    rng = np.random.default_rng(in_rate + out_rate)
    for n in [0, 1, 2, 3, 1001, *rng.integers(0, 40000, size=6)]:
        x = (0.3 * rng.standard_normal(int(n))).astype(np.float32)
        resampler = Resampler(in_rate, out_rate)
        streamed = [resampler.process(c) for c in uneven_chunks(x, seed=int(n))]
        y = np.concatenate([*streamed, resampler.finish()])
        assert len(y) == soxr_length(len(x), in_rate, out_rate)
        assert y.dtype == np.float32
        # Chunking changes nothing: the same samples as one call over the whole input.
        np.testing.assert_allclose(y, soxr.resample(x, in_rate, out_rate, quality="HQ"), atol=1e-6)


@pytest.mark.parametrize(
    ("in_rate", "out_rate", "n", "expected"),
    [
        (16000, 8000, 9, 5),  # 4.5 rounds up; Python's round() would give 4
        (16000, 8000, 4761, 2381),
        (24000, 22050, 5680, 5218),  # 5218.5 exactly, but 24000 / 22050 is inexact in binary
        (24000, 8000, 10, 3),
    ],
)
def test_resampler_length_at_ties(in_rate: int, out_rate: int, n: int, expected: int) -> None:
    resampler = Resampler(in_rate, out_rate)
    got = len(resampler.process(np.zeros(n, dtype=np.float32))) + len(resampler.finish())
    assert got == expected == soxr_length(n, in_rate, out_rate)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(24000, 8000), (16000, 48000)])
def test_resampler_keeps_frequency_and_waveform(in_rate: int, out_rate: int) -> None:
    resampler = Resampler(in_rate, out_rate)
    x = sine(in_rate, in_rate)
    y = np.concatenate([*(resampler.process(c) for c in uneven_chunks(x)), resampler.finish()])
    assert peak_hz(y, out_rate) == pytest.approx(440.0, abs=1.0)
    # soxr compensates its own delay: away from the edges the output is the sine sampled anew.
    middle = slice(out_rate // 10, -out_rate // 10)
    assert snr_db(sine(out_rate, len(y))[middle], y[middle]) > 80


def test_resampler_equal_rates_passes_through() -> None:
    resampler = Resampler(24000, 24000)
    x = sine(24000, 1000)
    np.testing.assert_array_equal(resampler.process(x), x)
    assert len(resampler.finish()) == 0


def read_raw(data: bytes, rate: int, subtype: str) -> npt.NDArray[np.int16]:
    pcm, _ = soundfile.read(
        io.BytesIO(data),
        samplerate=rate,
        channels=1,
        format="RAW",
        subtype=subtype,
        endian="LITTLE",
        dtype="int16",
    )
    return pcm


@pytest.mark.parametrize("encoding", [speech_pb2.AUDIO_ENCODING_UNSPECIFIED, PCM16])
def test_pcm16_round_trip(encoding: int) -> None:
    x = np.concatenate([sine(24000, 5000, amplitude=1.3), np.array([1, -1, 0, 2, -2], dtype=np.float32)])
    out = OutputStream(encoding, 24000, 0)
    chunks, tail = stream(out, x)
    decoded = read_raw(b"".join(chunks) + tail, 24000, "PCM_16")
    assert out.sample_rate == 24000 and out.samples == len(decoded) == len(x)
    assert np.max(np.abs(decoded / 32767 - np.clip(x, -1, 1))) <= 0.5 / 32767 + 1e-7


def test_output_stream_resamples_before_encoding() -> None:
    out = OutputStream(PCM16, 24000, 8000)
    x = sine(24000, 24000)
    chunks, tail = stream(out, x)
    decoded = read_raw(b"".join(chunks) + tail, 8000, "PCM_16")
    assert out.sample_rate == 8000
    assert out.samples == len(decoded) == soxr_length(len(x), 24000, 8000)
    assert peak_hz(decoded, 8000) == pytest.approx(440.0, abs=1.0)


def test_wav_round_trip_and_header() -> None:
    x = sine(16000, 7000, amplitude=1.2)
    out = OutputStream(WAV, 16000, 0)
    chunks, tail = stream(out, x)
    assert chunks[0] == b""  # uneven_chunks starts with an empty chunk: no header on its own
    first = next(c for c in chunks if c)
    assert first[:4] == b"RIFF" and first[8:16] == b"WAVEfmt " and first[36:40] == b"data"
    assert struct.unpack_from("<I", first, 4)[0] == struct.unpack_from("<I", first, 40)[0] == 0xFFFFFFFF
    data = b"".join(chunks) + tail
    assert len(data) == 44 + 2 * len(x) and data.count(b"RIFF") == 1
    # libsndfile takes the 0xFFFFFFFF data size as "to the end of the file".
    decoded, rate = soundfile.read(io.BytesIO(data), dtype="int16")
    assert rate == 16000 and out.samples == len(decoded) == len(x)
    assert np.max(np.abs(decoded / 32767 - np.clip(x, -1, 1))) <= 0.5 / 32767 + 1e-7


def test_wav_without_audio_is_a_valid_empty_file() -> None:
    out = OutputStream(WAV, 24000, 8000)
    assert out.write(np.zeros(0, dtype=np.float32)) == b""
    data = out.finish()
    assert len(data) == 44
    info = soundfile.info(io.BytesIO(data))
    assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == (
        "WAV",
        "PCM_16",
        8000,
        1,
        0,
    )


def test_mulaw_matches_libsndfile_on_every_16_bit_value() -> None:
    every = np.arange(-32768, 32768, dtype=np.int16)
    reference = io.BytesIO()
    soundfile.write(reference, every, 8000, format="RAW", subtype="ULAW")
    # x / 32767 is what pcm16_from_f32 maps back to x exactly (-32768 clips to -32767).
    assert mulaw_from_f32((every / 32767).astype(np.float32)) == reference.getvalue()


def test_mulaw_code_points() -> None:
    values = np.array([0.0, 1 / 32767, -1 / 32767, 1.0, -1.0, 2.0], dtype=np.float32)
    assert list(mulaw_from_f32(values)) == [0xFF, 0xFF, 0x7F, 0x80, 0x00, 0x80]


def test_mulaw_decoded_error_is_within_half_a_step() -> None:
    x = np.arange(-32635, 32636)
    decoded = read_raw(mulaw_from_f32((x / 32767).astype(np.float32)), 8000, "ULAW").astype(np.int64)
    # A step in the segment of a biased magnitude m = |x| + 0x84 is at most m / 16; the decoder
    # returns the middle of the step, so the error is at most m / 32 (the clip at 32635 is excluded).
    assert np.all(np.abs(decoded - x) <= (np.abs(x) + 0x84) / 32)


def test_mulaw_stream_round_trip() -> None:
    out = OutputStream(MULAW, 24000, 0)
    chunks, tail = stream(out, sine(24000, 24000))
    data = b"".join(chunks) + tail
    decoded = read_raw(data, 8000, "ULAW") / 32767
    assert out.sample_rate == 8000 and out.samples == len(data) == len(decoded) == 8000
    assert peak_hz(decoded, 8000) == pytest.approx(440.0, abs=1.0)
    assert snr_db(sine(8000, 8000), decoded) > 30  # mu-law gives about 38 dB on a loud signal


@pytest.mark.parametrize("rate", [8000, 12000, 16000, 24000, 48000])
def test_ogg_opus_round_trip(rate: int) -> None:
    out = OutputStream(OGG_OPUS, 24000, rate)
    x = sine(24000, 24000)
    chunks = [out.write(x[i : i + 480]) for i in range(0, len(x), 480)]  # 20 ms each, as a vocoder sends
    data = b"".join(chunks) + out.finish()
    assert data[:4] == b"OggS" and b"OpusHead" in data[:100]
    # Pages leave as they fill, not all at the end (soxr hands audio on in blocks of up to ~60 ms).
    assert sum(1 for c in chunks if c) >= 10
    decoded, decoded_rate = soundfile.read(io.BytesIO(data), dtype="float32")
    # The decoder trims the pre-skip and the padding after the last granule position: exactly our samples.
    assert decoded_rate == out.sample_rate == rate
    assert len(decoded) == out.samples == soxr_length(len(x), 24000, rate)
    assert peak_hz(decoded, rate) == pytest.approx(440.0, abs=1.0)
    assert snr_db(sine(rate, len(decoded)), decoded) > 15  # 21 to 39 dB measured at 32 kbps


def test_ogg_opus_bitrate_is_used() -> None:
    sizes = []
    for bitrate in (16000, 64000):
        out = OutputStream(OGG_OPUS, 24000, 0, opus_bitrate=bitrate)
        sizes.append(len(out.write(sine(24000, 48000)) + out.finish()))
    assert sizes[1] > 2 * sizes[0]


def test_ogg_opus_without_audio_still_sends_headers() -> None:
    out = OutputStream(OGG_OPUS, 24000, 0)
    assert out.write(np.zeros(0, dtype=np.float32)) == b""
    data = out.finish()
    assert data.startswith(b"OggS") and b"OpusHead" in data and b"OpusTags" in data


@pytest.mark.parametrize(
    ("encoding", "rate", "media_type"),
    [
        (PCM16, 24000, "audio/L16;rate=24000;channels=1"),
        (WAV, 0, "audio/wav"),
        (MULAW, 0, "audio/basic"),
        (MULAW, 16000, "audio/PCMU;rate=16000"),
        (OGG_OPUS, 0, "audio/ogg;codecs=opus"),
    ],
)
def test_media_type(encoding: int, rate: int, media_type: str) -> None:
    assert OutputStream(encoding, 24000, rate).media_type == media_type
