"""The seed pipeline's decode loop (veena3, BiCodec path), which the baseline runs inside each
request's token loop: the first decode once 10 semantic tokens have arrived, then one every 48
new tokens, each re-decoding the whole buffer (or only its last `window_tokens` tokens), a 50 ms
linear crossfade between successive decodes, and a closing whole-buffer decode at the end of
the stream. `bench.baseline` explains the flaws it reproduces."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from voxserve.v1 import vocoder_pb2
from voxserve.vocoder.codecs.bicodec import BiCodec

SAMPLE_RATE = 16000
SAMPLES_PER_TOKEN = 320
FIRST_DECODE_TOKENS = 10
DECODE_INTERVAL_TOKENS = 48
CROSSFADE_SAMPLES = SAMPLE_RATE * 50 // 1000

# -- the decode schedule ---------------------------------------------------------------------------


def decode_due(
    count: int,
    last_decode: int,
    *,
    first_tokens: int = FIRST_DECODE_TOKENS,
    interval_tokens: int = DECODE_INTERVAL_TOKENS,
) -> bool:
    """Whether the token loop decodes now, holding `count` tokens, the last decode at `last_decode`."""
    if last_decode == 0:
        return count >= first_tokens
    return count - last_decode >= interval_tokens


def decode_span(count: int, window_tokens: int | None) -> tuple[int, int]:
    """The tokens [start, end) a decode in the loop covers when `count` tokens have arrived."""
    if window_tokens is not None and count > window_tokens:
        return count - window_tokens, count
    return 0, count


def baseline_decode_windows(
    n_tokens: int,
    window_tokens: int | None = None,
    *,
    first_tokens: int = FIRST_DECODE_TOKENS,
    interval_tokens: int = DECODE_INTERVAL_TOKENS,
) -> list[tuple[int, int]]:
    """Every decode a stream of `n_tokens` gets, as token spans [start, end), when the engine yields
    one token per step (as it does on CPU); the runner makes the same calls step by step."""
    spans: list[tuple[int, int]] = []
    last = 0
    for count in range(1, n_tokens + 1):
        if decode_due(count, last, first_tokens=first_tokens, interval_tokens=interval_tokens):
            spans.append(decode_span(count, window_tokens))
            last = count
    if n_tokens > last:
        spans.append((0, n_tokens))  # the closing decode always takes the whole buffer
    return spans


# -- what is emitted after each decode -------------------------------------------------------------


def fade_in_weights(n: int) -> np.ndarray:
    """Linear weights of the incoming audio across a crossfade; the held tail gets 1 - w."""
    return np.linspace(0.0, 1.0, n, dtype=np.float32)


def crossfade(tail: np.ndarray | None, audio: np.ndarray, fade: int) -> tuple[np.ndarray, np.ndarray]:
    """(samples to send now, tail to hold back): the start of `audio` is faded in over the held
    `tail`, and the last `fade` samples of the result are held for the next call."""
    if tail is not None and tail.size and audio.size:
        k = min(tail.size, audio.size)
        w = fade_in_weights(k)
        audio = np.concatenate([tail[:k] * (1 - w) + audio[:k] * w, audio[k:]])
    split = audio.size - min(fade, audio.size)
    return audio[:split], audio[split:]


@dataclass
class SeedStitcher:
    """Turns each decode's output into the samples the seed sends, tracking what it has sent."""

    samples_per_token: int = SAMPLES_PER_TOKEN
    fade_samples: int = CROSSFADE_SAMPLES
    emitted: int = 0
    """Samples sent so far; also where the next whole-buffer decode's new audio starts."""
    tail: np.ndarray | None = field(default=None, repr=False)

    def push(self, audio: np.ndarray, *, windowed: bool, new_tokens: int) -> np.ndarray:
        """Samples to send after a decode; `new_tokens`: tokens that arrived since the last one."""
        if windowed:
            # The window's audio starts before what was sent, so the seed keeps only the length
            # of the new tokens' audio, counted from the end.
            fresh = new_tokens * self.samples_per_token
            new = audio[-fresh:] if audio.size > fresh else audio
        else:
            new = audio[self.emitted :]
        if not new.size:
            return new
        out, self.tail = crossfade(self.tail, new, self.fade_samples)
        self.emitted += out.size
        return out

    def flush(self) -> np.ndarray:
        """The held tail, sent last."""
        tail = self.tail if self.tail is not None else np.zeros(0, dtype=np.float32)
        self.tail = None
        self.emitted += tail.size
        return tail


# -- the runner ------------------------------------------------------------------------------------


@dataclass
class DecodeWork:
    """One request's decode calls, logged at its end like the seed's per-request timeline."""

    calls: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def add(self, tokens: int, seconds: float) -> None:
        self.calls += 1
        self.tokens += tokens
        self.seconds += seconds


def audio_chunk(
    samples: np.ndarray, offset: int, sample_rate: int, final: bool = False
) -> vocoder_pb2.AudioChunk:
    """A Decode response of float32 samples starting at `offset`."""
    return vocoder_pb2.AudioChunk(
        pcm_f32=samples.astype("<f4", copy=False).tobytes(),
        sample_offset=offset,
        sample_rate=sample_rate,
        final=final,
    )


class SeedDecodeLoop:
    """One stream's decode state in the seed's loop: tokens so far, the decode schedule and the
    stitching. `add` runs after each frame, `close` at the end of the stream; both return the
    chunks to send. Decodes run in a worker thread each, one stream at a time (no batching)."""

    def __init__(self, codec: BiCodec, conditioning: torch.Tensor, window_tokens: int | None):
        self.codec = codec
        self.conditioning = conditioning
        self.window_tokens = window_tokens
        self.stitcher = SeedStitcher(codec.samples_per_token)
        self.work = DecodeWork()
        self.tokens: list[int] = []
        self.last_decode = 0

    def _decode(self, tokens: list[int]) -> np.ndarray:
        started = time.perf_counter()
        ids = torch.tensor([tokens], dtype=torch.int64)
        audio = self.codec.decode(ids, self.conditioning.unsqueeze(0))[0]
        self.work.add(len(tokens), time.perf_counter() - started)
        return audio.cpu().numpy().astype(np.float32, copy=False)

    def _chunk(self, samples: np.ndarray, offset: int, final: bool = False) -> vocoder_pb2.AudioChunk:
        return audio_chunk(samples, offset, self.codec.sample_rate, final)

    async def _emit(self, start: int, end: int) -> list[vocoder_pb2.AudioChunk]:
        audio = await asyncio.to_thread(self._decode, self.tokens[start:end])
        offset = self.stitcher.emitted
        out = self.stitcher.push(audio, windowed=start > 0, new_tokens=end - self.last_decode)
        self.last_decode = end
        return [self._chunk(out, offset)] if out.size else []

    async def add(self, ids: list[int]) -> list[vocoder_pb2.AudioChunk]:
        self.tokens.extend(ids)
        if not decode_due(len(self.tokens), self.last_decode):
            return []
        return await self._emit(*decode_span(len(self.tokens), self.window_tokens))

    async def close(self) -> list[vocoder_pb2.AudioChunk]:
        """The closing whole-buffer decode (if tokens arrived since the last one), then the held tail."""
        chunks = await self._emit(0, len(self.tokens)) if len(self.tokens) > self.last_decode else []
        offset = self.stitcher.emitted
        chunks.append(self._chunk(self.stitcher.flush(), offset, final=True))
        return chunks
