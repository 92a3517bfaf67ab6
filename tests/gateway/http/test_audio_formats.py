"""OpenAI's response formats: 24 kHz mono at the requested speed, streamed, and readable by decoders
other than the encoder (libsndfile for WAV and FLAC; FFmpeg for the lossy codecs)."""

from __future__ import annotations

import io

import av
import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from voxserve.gateway.http.audio_formats import FORMATS, OUTPUT_RATE, OpenAIAudio

F32 = npt.NDArray[np.float32]
NATIVE_RATE = 16000
TONE_HZ = 440.0
SECONDS = 1.0
OPUS_BITRATE = 32000
# What a decoder adds before and after the audio (encoder delay, padding to whole frames).
CODEC_DELAY_SECONDS = {"mp3": 0.1, "aac": 0.1, "opus": 0.03}
DECODED_RATE = {"opus": 48000}  # Opus decodes at 48 kHz whatever rate was encoded
STREAMINFO_TOTAL = slice(18, 26)  # "fLaC", a block header, then STREAMINFO's rate..total-samples bits


def tone(seconds: float = SECONDS) -> F32:
    t = np.arange(int(NATIVE_RATE * seconds)) / NATIVE_RATE
    return (0.5 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)


def encoded(response_format: str, pcm: F32, speed: float = 1.0) -> tuple[list[bytes], bytes, OpenAIAudio]:
    """The pieces written for uneven chunks of `pcm`, the bytes of `finish`, and the output."""
    audio = OpenAIAudio(response_format, NATIVE_RATE, speed, opus_bitrate=OPUS_BITRATE)
    rng = np.random.default_rng(len(response_format))
    pieces, start = [], 0
    while start < len(pcm):
        size = int(rng.integers(1, 3000))
        pieces.append(audio.write(pcm[start : start + size]))
        start += size
    return pieces, audio.finish(), audio


def flac_with_length(data: bytes, samples: int) -> bytes:
    """A streamed FLAC's STREAMINFO cannot hold its length (0: unknown), which libsndfile does not
    read; with the length written in, libsndfile (libFLAC) decodes the frames themselves."""
    assert data[:4] == b"fLaC"
    bits = int.from_bytes(data[STREAMINFO_TOTAL], "big")
    assert (bits >> 44, (bits >> 41) & 7) == (OUTPUT_RATE, 0), "24 kHz mono in STREAMINFO"
    assert bits & ((1 << 36) - 1) == 0
    return data[:18] + (bits | samples).to_bytes(8, "big") + data[26:]


def decoded(response_format: str, data: bytes, samples: int) -> tuple[F32, int]:
    """Samples and the rate the decoder reports."""
    if response_format == "pcm":
        return (np.frombuffer(data, dtype="<i2") / 32768).astype(np.float32), OUTPUT_RATE
    if response_format == "flac":
        data = flac_with_length(data, samples)
    if response_format in ("wav", "flac"):
        pcm, rate = soundfile.read(io.BytesIO(data), dtype="float32")
        assert pcm.ndim == 1, "mono"
        return pcm, int(rate)
    return ffmpeg_decoded(data)


def ffmpeg_decoded(data: bytes) -> tuple[F32, int]:
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        assert stream.channels == 1
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        pcm = np.concatenate(frames) if frames else np.zeros(0, dtype=np.float32)
        return pcm.astype(np.float32), int(stream.rate)


def dominant_hz(pcm: F32, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(spectrum.argmax())])


@pytest.mark.parametrize("speed", [1.0, 2.0])
@pytest.mark.parametrize("response_format", list(FORMATS))
def test_each_format_streams_24_khz_audio_that_decodes(response_format: str, speed: float) -> None:
    pieces, tail, audio = encoded(response_format, tone(), speed)
    assert sum(map(len, pieces)) > 0, "bytes go out before the end of the stream"
    assert audio.sample_rate == OUTPUT_RATE
    expected = SECONDS / speed
    assert audio.samples / OUTPUT_RATE == pytest.approx(expected, rel=0.03)

    pcm, rate = decoded(response_format, b"".join(pieces) + tail, audio.samples)
    assert rate == DECODED_RATE.get(response_format, OUTPUT_RATE)
    delay = CODEC_DELAY_SECONDS.get(response_format, 0.0)
    duration = len(pcm) / rate
    assert audio.samples / OUTPUT_RATE - 0.005 <= duration <= audio.samples / OUTPUT_RATE + delay
    if response_format in ("pcm", "wav", "flac"):
        assert len(pcm) == audio.samples
    assert dominant_hz(pcm, rate) == pytest.approx(TONE_HZ, rel=0.02), "the tone, at its pitch"


@pytest.mark.parametrize("response_format", ["pcm", "wav", "flac"])
def test_lossless_formats_carry_the_resampled_tone(response_format: str) -> None:
    pieces, tail, audio = encoded(response_format, tone())
    pcm, _ = decoded(response_format, b"".join(pieces) + tail, audio.samples)
    t = np.arange(len(pcm)) / OUTPUT_RATE
    reference = 0.5 * np.sin(2 * np.pi * TONE_HZ * t)
    middle = slice(OUTPUT_RATE // 10, -OUTPUT_RATE // 10)  # clear of the resampler's edges
    assert np.abs(pcm[middle] - reference[middle]).max() < 0.01


@pytest.mark.parametrize("response_format", list(FORMATS))
def test_speed_two_halves_the_duration(response_format: str) -> None:
    _, _, normal = encoded(response_format, tone())
    _, _, fast = encoded(response_format, tone(), speed=2.0)
    assert fast.samples / normal.samples == pytest.approx(0.5, rel=0.03)


def test_an_empty_wav_stream_is_a_decodable_empty_file() -> None:
    audio = OpenAIAudio("wav", NATIVE_RATE, opus_bitrate=OPUS_BITRATE)
    assert audio.write(np.zeros(0, dtype=np.float32)) == b"", "no header without audio"
    pcm, rate = decoded("wav", audio.finish(), 0)
    assert (len(pcm), rate, audio.samples) == (0, OUTPUT_RATE, 0)


def test_an_empty_flac_stream_is_a_decodable_empty_file() -> None:
    audio = OpenAIAudio("flac", NATIVE_RATE, opus_bitrate=OPUS_BITRATE)
    assert audio.write(np.zeros(0, dtype=np.float32)) == b""
    data = audio.finish()
    flac_with_length(data, 0)  # a 24 kHz mono STREAMINFO
    pcm, rate = ffmpeg_decoded(data)
    assert (len(pcm), rate, audio.samples) == (0, OUTPUT_RATE, 0)


@pytest.mark.parametrize(
    ("response_format", "headers"), [("mp3", [b"ID3"]), ("opus", [b"OggS", b"OpusHead", b"OpusTags"])]
)
def test_an_empty_lossy_stream_still_sends_its_headers(response_format: str, headers: list[bytes]) -> None:
    audio = OpenAIAudio(response_format, NATIVE_RATE, opus_bitrate=OPUS_BITRATE)
    assert audio.write(np.zeros(0, dtype=np.float32)) == b""
    data = audio.finish()
    assert data.startswith(headers[0])
    assert all(header in data for header in headers)
    assert audio.samples == 0


@pytest.mark.parametrize("response_format", ["pcm", "aac"])
def test_headerless_formats_give_no_bytes_for_an_empty_stream(response_format: str) -> None:
    # Raw PCM and ADTS have no file header: every ADTS frame carries its own.
    audio = OpenAIAudio(response_format, NATIVE_RATE, opus_bitrate=OPUS_BITRATE)
    assert audio.write(np.zeros(0, dtype=np.float32)) + audio.finish() == b""
    assert audio.samples == 0


def test_media_types() -> None:
    assert {name: f.media_type for name, f in FORMATS.items()} == {
        "mp3": "audio/mpeg",
        "opus": "audio/ogg; codecs=opus",
        "aac": "audio/aac",
        "flac": "audio/flac",
        "wav": "audio/wav",
        "pcm": "audio/pcm; rate=24000; channels=1",
    }
    assert OpenAIAudio("wav", NATIVE_RATE, opus_bitrate=OPUS_BITRATE).media_type == "audio/wav"
