"""Reference audio files: which format the bytes are, and decoding them to mono float64.

libsndfile (through soundfile) decodes every format it was built with; PyAV decodes the rest
(an older libsndfile has neither Opus nor MP3). Both decode incrementally, mix each block down
to mono as it arrives and stop as soon as the audio runs past the duration limit, so a small
file that expands to hours of audio costs no more than the limit.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass
from typing import Literal

import av
import numpy as np
import numpy.typing as npt
import soundfile

F64 = npt.NDArray[np.float64]
ChannelMix = Literal["first", "mean"]

WAV, FLAC, OGG_VORBIS, OGG_OPUS, MP3 = "WAV", "FLAC", "Ogg Vorbis", "Ogg Opus", "MP3"
ACCEPTED = "WAV, FLAC, Ogg (Opus or Vorbis) or MP3"
# Samples (frames x channels) per block read from libsndfile: bounds the memory of many channels.
_BLOCK_SAMPLES = 1 << 20


class DecodeError(ValueError):
    """The bytes are not a file of an accepted format, or it cannot be decoded."""


class TooLong(ValueError):
    """The audio lasts longer than allowed; `seconds` is its length when the header states it."""

    def __init__(self, seconds: float | None) -> None:
        super().__init__(seconds)
        self.seconds = seconds


@dataclass(frozen=True)
class Decoded:
    samples: F64
    """Mono, at the file's own rate."""
    sample_rate: int


def _soundfile_formats() -> frozenset[str]:
    formats = {WAV, FLAC}
    ogg = soundfile.available_subtypes("OGG")
    if "VORBIS" in ogg:
        formats.add(OGG_VORBIS)
    if "OPUS" in ogg:
        formats.add(OGG_OPUS)
    if "MP3" in soundfile.available_formats():
        formats.add(MP3)
    return frozenset(formats)


SOUNDFILE_FORMATS = _soundfile_formats()
"""The accepted formats the installed libsndfile decodes; PyAV decodes the others."""


def _skip_id3(data: bytes) -> int:
    """Offset of the first byte after any ID3v2 tags (and the zero padding some writers add)."""
    offset = 0
    while data[offset : offset + 3] == b"ID3" and len(data) >= offset + 10:
        size = 0
        for byte in data[offset + 6 : offset + 10]:  # syncsafe: 7 bits a byte
            size = (size << 7) | (byte & 0x7F)
        footer = 10 if data[offset + 5] & 0x10 else 0
        offset += 10 + size + footer
    while offset < len(data) and data[offset] == 0:
        offset += 1
    return offset


def _is_mp3_frame(header: bytes) -> bool:
    """An MPEG audio Layer III frame header (ADTS AAC shares the sync word but has layer 0)."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return False
    version, layer = (header[1] >> 3) & 3, (header[1] >> 1) & 3
    bitrate, rate = header[2] >> 4, (header[2] >> 2) & 3
    return version != 1 and layer == 1 and bitrate != 15 and rate != 3


def sniff(data: bytes) -> str | None:
    """The accepted format the bytes begin as, or None."""
    if data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
        return WAV
    if data[:4] == b"fLaC":
        return FLAC
    if data[:4] == b"OggS" and len(data) > 27:
        packet = 27 + data[26]  # the first page's header, then its segment table
        if data[packet : packet + 8] == b"OpusHead":
            return OGG_OPUS
        if data[packet : packet + 7] == b"\x01vorbis":
            return OGG_VORBIS
        return None
    start = _skip_id3(data)
    return MP3 if _is_mp3_frame(data[start : start + 4]) else None


def _to_mono(block: F64, mix: ChannelMix) -> F64:
    """(frames, channels) -> frames."""
    if block.shape[1] == 1 or mix == "first":
        return block[:, 0]
    return block.mean(axis=1)


def decode_soundfile(data: bytes, mix: ChannelMix, max_seconds: float) -> Decoded:
    """Decodes with libsndfile (float64, as `soundfile.read` gives it)."""
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as file:
            rate, channels = file.samplerate, file.channels
            if file.frames > max_seconds * rate:
                raise TooLong(file.frames / rate)
            block = max(1, _BLOCK_SAMPLES // channels)
            parts: list[F64] = []
            frames = 0
            while len(part := file.read(block, dtype="float64", always_2d=True)):
                frames += len(part)
                if frames > max_seconds * rate:  # the header understated the length
                    raise TooLong(None)
                parts.append(_to_mono(part, mix))
    except soundfile.LibsndfileError as error:
        raise DecodeError(error.error_string) from error
    samples = np.concatenate(parts) if parts else np.zeros(0)
    return Decoded(samples, rate)


def decode_av(data: bytes, mix: ChannelMix, max_seconds: float) -> Decoded:
    """Decodes the first audio stream with PyAV, converted to float64 by libswresample."""
    parts: list[F64] = []
    frames = 0
    try:
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.audio:
                raise DecodeError("no audio stream")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            to_float = av.AudioResampler(format="dblp", rate=rate)
            for frame in itertools.chain(container.decode(stream), [None]):  # None flushes
                for planar in to_float.resample(frame):
                    # (channels, frames) -> (frames, channels); already float64, so no copy
                    part = np.asarray(planar.to_ndarray(), dtype=np.float64).T
                    frames += len(part)
                    if frames > max_seconds * rate:
                        raise TooLong(None)
                    parts.append(_to_mono(part, mix))
    except av.error.FFmpegError as error:
        raise DecodeError(str(error.strerror or error)) from error
    samples = np.concatenate(parts) if parts else np.zeros(0)
    return Decoded(samples, rate)


def decode(data: bytes, mix: ChannelMix, max_seconds: float) -> tuple[str, Decoded]:
    """Recognises the format from the bytes and decodes it: with libsndfile where the installed
    one has the format, else with PyAV.

    Raises `DecodeError` for bytes of no accepted format or a file that does not decode,
    `TooLong` for audio past `max_seconds`.
    """
    kind = sniff(data)
    if kind is None:
        raise DecodeError(f"not a {ACCEPTED} file")
    try:
        decoder = decode_soundfile if kind in SOUNDFILE_FORMATS else decode_av
        return kind, decoder(data, mix, max_seconds)
    except DecodeError as error:
        raise DecodeError(f"not a readable {kind} file ({error})") from error
