"""Output encodings: resample the voice's float32 mono PCM and encode it as the client asked.

Every encoder takes float32 chunks in [-1, 1] at its output rate, returns the bytes ready so far
from `encode` (possibly b"" while it buffers) and the rest from `finish`.
"""

from __future__ import annotations

import struct
from typing import Protocol

import av
import av.audio.stream
import numpy as np
import numpy.typing as npt
import soxr

from voxserve.common.status import InvalidArgument
from voxserve.gateway.audio import pcm16_from_f32
from voxserve.v1 import speech_pb2

F32 = npt.NDArray[np.float32]

ENCODING_NAMES = {
    speech_pb2.PCM16: "PCM16",
    speech_pb2.WAV: "WAV",
    speech_pb2.MULAW: "MULAW",
    speech_pb2.OGG_OPUS: "OGG_OPUS",
}
# Rates for sample_rate 0 other than the voice's own (telephony for mu-law, Opus's full band).
DEFAULT_RATES: dict[int, int] = {speech_pb2.MULAW: 8000, speech_pb2.OGG_OPUS: 48000}
MIN_RATE, MAX_RATE = 8000, 48000
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # the rates libopus encodes natively


def output_rate(encoding: int, requested: int, native: int) -> int:
    """The output sample rate for a request (0 means the encoding's default), validated."""
    if encoding == speech_pb2.AUDIO_ENCODING_UNSPECIFIED:
        encoding = speech_pb2.PCM16
    if encoding not in ENCODING_NAMES:
        supported = ", ".join(ENCODING_NAMES.values())
        raise InvalidArgument(f"encoding {encoding} is not supported; supported: {supported}")
    if requested == 0:
        return DEFAULT_RATES.get(encoding, native)
    if encoding == speech_pb2.OGG_OPUS and requested not in OPUS_RATES:
        allowed = ", ".join(map(str, OPUS_RATES))
        raise InvalidArgument(f"sample_rate {requested} is not allowed for OGG_OPUS; allowed: {allowed}")
    if not MIN_RATE <= requested <= MAX_RATE:
        raise InvalidArgument(f"sample_rate {requested} is out of range; allowed {MIN_RATE}..{MAX_RATE}")
    return requested


class Resampler:
    """Streaming soxr resampler; a passthrough when the rates are equal.

    After `finish`, the total output length is libsoxr's `(int)(n_in / (in_rate / out_rate) + 0.5)`
    in double precision: round half up where the ratio is exact in binary (16000 -> 8000), either way
    at an exact tie otherwise (24000 -> 22050). It does not depend on how the input was chunked.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._stream = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")

    def process(self, pcm: F32) -> F32:
        pcm = np.ascontiguousarray(pcm, dtype=np.float32)
        return pcm if self._stream is None else self._stream.resample_chunk(pcm)

    def finish(self) -> F32:
        """The filter's tail, which soxr holds back until it knows the input has ended."""
        empty = np.zeros(0, dtype=np.float32)
        return empty if self._stream is None else self._stream.resample_chunk(empty, last=True)


class Encoder(Protocol):
    def encode(self, pcm_f32: F32) -> bytes: ...
    def finish(self) -> bytes: ...


class Pcm16Encoder:
    def encode(self, pcm_f32: F32) -> bytes:
        return pcm16_from_f32(pcm_f32)

    def finish(self) -> bytes:
        return b""


class WavEncoder:
    """PCM16 after a 44-byte header whose sizes are 0xFFFFFFFF: the length is unknown while streaming."""

    def __init__(self, rate: int) -> None:
        unknown = 0xFFFFFFFF
        fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)  # PCM, mono, 2 bytes per frame
        self._header = b"RIFF" + struct.pack("<I", unknown) + b"WAVE"
        self._header += b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", unknown)

    def _with_header(self, data: bytes) -> bytes:
        header, self._header = self._header, b""
        return header + data

    def encode(self, pcm_f32: F32) -> bytes:
        # An empty chunk must not send the header alone: it belongs with the first audio message.
        return self._with_header(pcm16_from_f32(pcm_f32)) if len(pcm_f32) else b""

    def finish(self) -> bytes:
        return self._with_header(b"")  # a valid empty file when no audio was ever written


# Segment (exponent) of a biased magnitude, indexed by magnitude >> 7: the position of its top bit.
_MULAW_SEGMENT = np.array([max(0, i.bit_length() - 1) for i in range(256)], dtype=np.int32)


def mulaw_from_f32(pcm_f32: F32) -> bytes:
    """G.711 mu-law of the 16-bit samples (the classic bias 0x84, clip 32635 encoder), vectorised."""
    x = np.frombuffer(pcm16_from_f32(pcm_f32), dtype="<i2").astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), 32635) + 0x84
    segment = _MULAW_SEGMENT[magnitude >> 7]
    mantissa = (magnitude >> (segment + 3)) & 0x0F
    return (~(sign | (segment << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes()


class MulawEncoder:
    def encode(self, pcm_f32: F32) -> bytes:
        return mulaw_from_f32(pcm_f32)

    def finish(self) -> bytes:
        return b""


class MuxerSink:
    """Collects what a muxer writes so each call can hand on the bytes completed so far."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        return len(data)

    def take(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


class MuxedEncoder:
    """A codec in a streamable container through PyAV (FFmpeg): what the muxer has written is
    handed on after every chunk. PyAV re-frames and converts the float32 chunks to the codec's
    frame size and sample format."""

    def __init__(
        self,
        container: str,
        codec: str,
        rate: int,
        *,
        bitrate: int | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        self._rate = rate
        self._pts = 0
        self._sink = MuxerSink()
        self._container = av.open(self._sink, "w", format=container, options=options or {})
        stream = self._container.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.audio.stream.AudioStream)  # an audio codec's stream
        self._stream = stream
        if bitrate is not None:
            self._stream.bit_rate = bitrate

    def encode(self, pcm_f32: F32) -> bytes:
        if len(pcm_f32):
            pcm = np.ascontiguousarray(pcm_f32, dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(pcm[None], format="flt", layout="mono")
            frame.sample_rate = self._rate
            frame.pts = self._pts
            self._pts += len(pcm)
            self._container.mux(self._stream.encode(frame))
        return self._sink.take()

    def finish(self) -> bytes:
        if self._pts == 0:
            self._container.start_encoding()  # at least the headers, though no audio
        self._container.mux(self._stream.encode(None))
        self._container.close()
        return self._sink.take()


def ogg_opus_encoder(rate: int, bitrate: int = 32000) -> MuxedEncoder:
    """Opus in Ogg; one page per 20 ms packet so pages stream out as they fill."""
    return MuxedEncoder("ogg", "libopus", rate, bitrate=bitrate, options={"page_duration": "20000"})


class OutputStream:
    """One response's audio: the rate check, resampling to the output rate, and the encoder."""

    def __init__(
        self, encoding: int, native_rate: int, requested_rate: int, *, opus_bitrate: int = 32000
    ) -> None:
        self.sample_rate = output_rate(encoding, requested_rate, native_rate)
        self.encoding = encoding or speech_pb2.PCM16
        self.samples = 0  # at the output rate, handed to the encoder so far
        self._resampler = Resampler(native_rate, self.sample_rate)
        self._encoder: Encoder
        if self.encoding == speech_pb2.WAV:
            self._encoder = WavEncoder(self.sample_rate)
        elif self.encoding == speech_pb2.MULAW:
            self._encoder = MulawEncoder()
        elif self.encoding == speech_pb2.OGG_OPUS:
            self._encoder = ogg_opus_encoder(self.sample_rate, opus_bitrate)
        else:
            self._encoder = Pcm16Encoder()

    @property
    def media_type(self) -> str:
        if self.encoding == speech_pb2.WAV:
            return "audio/wav"
        if self.encoding == speech_pb2.MULAW:
            # audio/basic is 8 kHz by definition (RFC 2046); other rates need the RTP name (RFC 3551)
            return "audio/basic" if self.sample_rate == 8000 else f"audio/PCMU;rate={self.sample_rate}"
        if self.encoding == speech_pb2.OGG_OPUS:
            return "audio/ogg;codecs=opus"
        return f"audio/L16;rate={self.sample_rate};channels=1"  # RFC 2586: rate is required

    def write(self, pcm_f32: F32) -> bytes:
        return self._encode(self._resampler.process(pcm_f32))

    def finish(self) -> bytes:
        return self._encode(self._resampler.finish()) + self._encoder.finish()

    def _encode(self, pcm: F32) -> bytes:
        self.samples += len(pcm)
        return self._encoder.encode(pcm)
