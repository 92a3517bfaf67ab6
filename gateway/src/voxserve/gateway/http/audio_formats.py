"""OpenAI's `response_format`s: the voice's audio at 24 kHz mono, at the requested speed,
encoded for streaming (every format's bytes can be played or decoded as they arrive)."""

from __future__ import annotations

from dataclasses import dataclass

from voxserve.gateway.formats import (
    F32,
    Encoder,
    MuxedEncoder,
    Pcm16Encoder,
    Resampler,
    WavEncoder,
    ogg_opus_encoder,
)
from voxserve.gateway.tempo import Tempo

# OpenAI's speech is 24 kHz in every format; `pcm` is documented as 24 kHz 16-bit mono.
OUTPUT_RATE = 24000
MP3_BITRATE = 64000
AAC_BITRATE = 64000


@dataclass(frozen=True)
class ResponseFormat:
    name: str
    media_type: str


FORMATS = {
    f.name: f
    for f in (
        ResponseFormat("mp3", "audio/mpeg"),
        ResponseFormat("opus", "audio/ogg; codecs=opus"),
        ResponseFormat("aac", "audio/aac"),
        ResponseFormat("flac", "audio/flac"),
        ResponseFormat("wav", "audio/wav"),
        ResponseFormat("pcm", "audio/pcm; rate=24000; channels=1"),
    )
}


def encoder(name: str, opus_bitrate: int) -> Encoder:
    if name == "mp3":
        return MuxedEncoder("mp3", "libmp3lame", OUTPUT_RATE, bitrate=MP3_BITRATE)
    if name == "opus":
        return ogg_opus_encoder(OUTPUT_RATE, opus_bitrate)
    if name == "aac":  # ADTS: each frame carries its header, so a stream decodes from any point
        return MuxedEncoder("adts", "aac", OUTPUT_RATE, bitrate=AAC_BITRATE)
    if name == "flac":
        return MuxedEncoder("flac", "flac", OUTPUT_RATE)
    if name == "wav":
        return WavEncoder(OUTPUT_RATE)
    return Pcm16Encoder()


class OpenAIAudio:
    """One response's audio in an OpenAI `response_format` (an `AudioOutput` of the core)."""

    def __init__(
        self, response_format: str, native_rate: int, speed: float = 1.0, *, opus_bitrate: int
    ) -> None:
        self.format = FORMATS[response_format]
        self.sample_rate = OUTPUT_RATE
        self.samples = 0
        self._resampler = Resampler(native_rate, OUTPUT_RATE)
        self._tempo = Tempo(OUTPUT_RATE, speed) if speed != 1.0 else None
        self._encoder = encoder(response_format, opus_bitrate)

    @property
    def media_type(self) -> str:
        return self.format.media_type

    def write(self, pcm_f32: F32) -> bytes:
        pcm = self._resampler.process(pcm_f32)
        if self._tempo is not None:
            pcm = self._tempo.process(pcm)
        return self._encode(pcm)

    def finish(self) -> bytes:
        pcm = self._resampler.finish()
        if self._tempo is not None:
            pcm = self._tempo.process(pcm)
            data = self._encode(pcm)
            return data + self._encode(self._tempo.finish()) + self._encoder.finish()
        return self._encode(pcm) + self._encoder.finish()

    def _encode(self, pcm: F32) -> bytes:
        self.samples += len(pcm)
        return self._encoder.encode(pcm)
