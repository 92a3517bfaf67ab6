"""The seed's decode loop for the codecs the seed pipeline never had (S3Gen, SNAC).

The seed decoded BiCodec inside each request's token loop (`bench.seed_loop`): a first decode
after 10 tokens (200 ms of audio), then one every 48 tokens (960 ms), each re-decoding the whole
buffer, with 50 ms crossfades between decodes. Here the same loop runs on another codec, its
counts set to the same audio durations at the codec's token rate, each decode the codec's own
whole-utterance decode (S3Gen: `decode_offline`, flow and HiFT over every token so far; SNAC:
every frame so far), one stream at a time, with no batching.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bench.seed_loop import DecodeWork, SeedStitcher, audio_chunk, decode_due
from voxserve.v1 import vocoder_pb2
from voxserve.vocoder.codecs.base import Codec
from voxserve.vocoder.codecs.s3gen.codec import S3Conditioning, S3GenCodec
from voxserve.vocoder.codecs.s3gen.offline import decode_offline
from voxserve.vocoder.codecs.s3gen.voice import S3Voice
from voxserve.vocoder.codecs.snac import SnacCodec

# The seed's schedule in audio time: 10 and 48 BiCodec tokens of 20 ms each.
FIRST_DECODE_SECONDS = 0.2
DECODE_INTERVAL_SECONDS = 0.96
CROSSFADE_SECONDS = 0.05


def whole_buffer_decoder(
    codec: Codec, conditioning: Any, seed: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """tokens [T] (or frames [T, 7]) -> the codec's samples for all of them, on the host."""
    if isinstance(codec, S3GenCodec):
        assert isinstance(conditioning, S3Conditioning)
        voice = S3Voice(conditioning.prompt_tokens, conditioning.prompt_mel, conditioning.xvector)
        return lambda tokens: decode_offline(codec.model, tokens, voice, seed)
    if isinstance(codec, SnacCodec):
        return lambda frames: codec.decode(frames.unsqueeze(0), seeds=[seed], first_frames=[0])[0].cpu()
    raise ValueError(f"codec {codec.name!r} has no whole-buffer decode here")


class WholeBufferLoop:
    """One stream in the seed's loop on any codec: `add` after each frame of ids, `close` at the
    end; both return the chunks to send."""

    def __init__(self, codec: Codec, conditioning: Any, seed: int) -> None:
        self.codec = codec
        self.decode_all = whole_buffer_decoder(codec, conditioning, seed)
        tokens_per_second = codec.sample_rate / codec.samples_per_token
        self.first_tokens = max(1, math.ceil(FIRST_DECODE_SECONDS * tokens_per_second))
        self.interval_tokens = max(1, round(DECODE_INTERVAL_SECONDS * tokens_per_second))
        self.stitcher = SeedStitcher(codec.samples_per_token, round(CROSSFADE_SECONDS * codec.sample_rate))
        self.work = DecodeWork()
        self.ids: list[int] = []
        self.last_decode = 0

    @property
    def tokens(self) -> int:
        return len(self.ids) // self.codec.codes_per_token

    def _decode(self, count: int) -> np.ndarray:
        started = time.perf_counter()
        ids = torch.tensor(self.ids[: count * self.codec.codes_per_token], dtype=torch.int64)
        if self.codec.codes_per_token > 1:
            ids = ids.reshape(count, self.codec.codes_per_token)
        audio = self.decode_all(ids)
        self.work.add(count, time.perf_counter() - started)
        return audio.float().numpy()

    def _chunk(self, samples: np.ndarray, offset: int, final: bool = False) -> vocoder_pb2.AudioChunk:
        return audio_chunk(samples, offset, self.codec.sample_rate, final)

    async def _emit(self, count: int) -> list[vocoder_pb2.AudioChunk]:
        audio = await asyncio.to_thread(self._decode, count)
        offset = self.stitcher.emitted
        out = self.stitcher.push(audio, windowed=False, new_tokens=count - self.last_decode)
        self.last_decode = count
        return [self._chunk(out, offset)] if out.size else []

    async def add(self, ids: list[int]) -> list[vocoder_pb2.AudioChunk]:
        self.ids.extend(ids)
        count = self.tokens
        due = decode_due(
            count, self.last_decode, first_tokens=self.first_tokens, interval_tokens=self.interval_tokens
        )
        if not due:
            return []
        return await self._emit(count)

    async def close(self) -> list[vocoder_pb2.AudioChunk]:
        """The closing whole-buffer decode (if tokens arrived since the last one), then the held tail."""
        chunks = await self._emit(self.tokens) if self.tokens > self.last_decode else []
        offset = self.stitcher.emitted
        chunks.append(self._chunk(self.stitcher.flush(), offset, final=True))
        return chunks
