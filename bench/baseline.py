"""The monolithic pipeline voxserve replaces, behind the same public API so one load client
measures both.

One process holds the vLLM engine and the BiCodec decoder, and every request decodes inside its
own token loop the way the seed pipeline (veena3, BiCodec path) does:

- the first decode once 10 semantic tokens have arrived, then one every 48 new tokens, each
  re-decoding the whole buffer (or, with `window_tokens`, only its last `window_tokens` tokens);
- after a decode the new audio is what lies past the samples already sent to the user (windowed:
  the last `new tokens x 320` samples of the window), its first 50 ms is crossfaded linearly
  into the 50 ms tail held back from the previous decode, and its own last 50 ms is held back;
- at the end of the stream, if tokens arrived since the last decode, the whole buffer is decoded
  once more (never windowed) and treated like a whole-buffer decode; then the held tail is sent.

There is no batching across requests: each decode runs in a worker thread of its own, so
concurrent requests contend for the CPU like independent loops in one process.

The seed's behaviour is reproduced including its flaws. In windowed mode each windowed decode
crossfades the previous tail (audio just before the new tokens) with the start of the new tokens'
audio instead of with the same instant, so every such decode shortens the output by 50 ms; the
closing whole-buffer decode resumes from the count of samples sent, which replays that much
already-played audio and restores the total. When the stream ends exactly on a decode step there
is no closing decode, and the output stays short by 50 ms per windowed decode.

Where this differs from the seed: the seed's default first decode waits for 48 tokens (10 is
only a floor) unless its adaptive mode sets a first interval; the first decode here is at 10
tokens, the adaptive mode's setting. Audio is float32 rather than int16 until the gateway
converts it. The seed's closing decode runs on the event loop; here it runs in a thread like the
others.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import grpc
import numpy as np
import torch

from voxserve.common.logging import get_logger
from voxserve.common.request_id import current_request_id
from voxserve.common.status import InvalidArgument
from voxserve.gateway.pipeline import SegmentStats, UpstreamError
from voxserve.generator.engine import Frame, Sampling, Speaker, Style
from voxserve.generator.servicer import frame_to_proto, parse_generate_request
from voxserve.v1 import generator_pb2, vocoder_pb2
from voxserve.vocoder.codecs.base import CodecInputError, VoiceConditioning
from voxserve.vocoder.codecs.bicodec import BiCodec

SAMPLE_RATE = 16000
SAMPLES_PER_TOKEN = 320
FIRST_DECODE_TOKENS = 10
DECODE_INTERVAL_TOKENS = 48
CROSSFADE_SAMPLES = SAMPLE_RATE * 50 // 1000

log = get_logger(__name__)


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
        return vocoder_pb2.AudioChunk(
            pcm_f32=samples.astype("<f4", copy=False).tobytes(),
            sample_offset=offset,
            sample_rate=self.codec.sample_rate,
            final=final,
        )

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


class TokenSource(Protocol):
    """What the runner needs from the engine: `TokenGenerator.generate`."""

    def generate(
        self,
        text: str,
        *,
        global_ids: list[int] | None,
        style: Style | None,
        sampling: Sampling,
        request_id: str,
        speaker: Speaker | None = None,
    ) -> AsyncIterator[Frame]: ...


class MonolithicRunner:
    """A `SegmentRunner` that generates and decodes in one process, one loop per request."""

    def __init__(
        self,
        generator: TokenSource,
        codec: BiCodec,
        *,
        window_tokens: int | None = None,
        max_text_chars: int = 2000,
        max_tokens: int = 3000,
    ):
        if window_tokens is not None and window_tokens < 1:
            raise ValueError("window_tokens must be >= 1 or None")
        self.generator = generator
        self.codec = codec
        self.window_tokens = window_tokens
        self.max_text_chars = max_text_chars
        self.max_tokens = max_tokens

    def _condition(self, global_ids: list[int]) -> torch.Tensor:
        return self.codec.condition(VoiceConditioning(global_ids=tuple(global_ids)))

    async def __call__(
        self,
        request: generator_pb2.GenerateRequest,
        *,
        codec: str,
        seed: int,
        stats: SegmentStats,
        deadline_seconds: float | None = None,
        s3_prompt: vocoder_pb2.S3Prompt | None = None,
    ) -> AsyncIterator[vocoder_pb2.AudioChunk]:
        """Audio chunks of one segment; `seed` is unused (BiCodec decoding is deterministic)."""
        if codec != self.codec.name or s3_prompt is not None:
            raise UpstreamError(
                "vocoder",
                grpc.StatusCode.INVALID_ARGUMENT,
                f"start.codec {codec!r} is unknown; this pipeline serves {self.codec.name!r}",
            )
        try:
            # The generator service's validation, so both systems accept and sample alike.
            args = parse_generate_request(
                request,
                max_text_chars=self.max_text_chars,
                max_tokens=self.max_tokens,
                num_global=self.codec.global_vocab_size,
            )
        except InvalidArgument as exc:
            raise UpstreamError("generator", grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
        deadline = None if deadline_seconds is None else time.monotonic() + deadline_seconds

        loop: SeedDecodeLoop | None = None
        # An async generator in practice; closing it aborts the engine request when the caller leaves.
        frames = cast(
            AsyncGenerator[Frame, None],
            self.generator.generate(**args, request_id=current_request_id() or "baseline"),
        )
        try:
            async with aclosing(frames):
                async for frame in frames:
                    if deadline is not None and time.monotonic() > deadline:
                        raise UpstreamError(
                            "generator", grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"
                        )
                    if frame.global_ids:
                        conditioning = await asyncio.to_thread(self._condition, frame.global_ids)
                        loop = SeedDecodeLoop(self.codec, conditioning, self.window_tokens)
                    if frame.semantic_ids:
                        if loop is None:
                            raise UpstreamError(
                                "generator", grpc.StatusCode.INTERNAL, "semantic ids before global ids"
                            )
                        if stats.first_token_at is None:
                            stats.first_token_at = time.monotonic()
                        for chunk in await loop.add(list(frame.semantic_ids)):
                            yield chunk
                    if frame.result is not None:
                        stats.result.CopyFrom(frame_to_proto(frame).result)
            if loop is None:
                raise UpstreamError("generator", grpc.StatusCode.INTERNAL, "the generator sent no global ids")
            closing = await loop.close()
        except InvalidArgument as exc:
            raise UpstreamError("generator", grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
        except CodecInputError as exc:
            raise UpstreamError("vocoder", grpc.StatusCode.INTERNAL, str(exc)) from exc
        log.info(
            "decoded",
            semantic_tokens=len(loop.tokens),
            samples=loop.stitcher.emitted,
            decode_calls=loop.work.calls,
            tokens_decoded=loop.work.tokens,
            decode_seconds=round(loop.work.seconds, 4),
        )
        for chunk in closing:
            yield chunk


# -- the server ------------------------------------------------------------------------------------


def build_runner(pack: Path | None, window_tokens: int | None, device: str = "cpu") -> MonolithicRunner:
    """The engine (as the generator service builds it) and the pack's BiCodec in this process."""
    from voxserve.generator import config as generator_config
    from voxserve.generator.app import build_engine, prepare_vllm_environment
    from voxserve.random_packs.writer import resolve_pack

    config = generator_config.load(pack=pack)
    prepare_vllm_environment(config)
    generator = build_engine(config)
    codec = BiCodec.from_pack(resolve_pack(config.pack).root, device=device)
    return MonolithicRunner(
        generator,
        codec,
        window_tokens=window_tokens,
        max_text_chars=config.max_text_chars,
        max_tokens=config.max_tokens,
    )


async def serve_baseline(args: argparse.Namespace) -> None:
    from voxserve.common.logging import configure_logging
    from voxserve.common.server import serve
    from voxserve.gateway import config as gateway_config
    from voxserve.gateway.app import speech_service
    from voxserve.gateway.servicer import SpeechServicer
    from voxserve.gateway.voices import VoiceRegistry

    config = gateway_config.load(host=args.host, port=args.port, metrics_port=args.metrics_port)
    configure_logging("baseline", config.log_level)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    runner = build_runner(args.pack, args.window_tokens, args.device)
    servicer = SpeechServicer(VoiceRegistry.builtin(), runner, config)

    async def shutdown() -> None:
        runner.generator.llm.shutdown()  # type: ignore[attr-defined]

    await serve(speech_service(servicer, name="baseline", on_stop=shutdown), config)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.baseline",
        description="Serve voxserve.v1.Speech from the monolithic baseline pipeline.",
    )
    parser.add_argument("--pack", type=Path, default=None, help="model pack (default: the embedded one)")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="gRPC port")
    parser.add_argument("--metrics-port", type=int, default=0, help="Prometheus port; 0 disables")
    parser.add_argument(
        "--window-tokens",
        type=int,
        default=None,
        help="re-decode only the last N tokens (the seed's windowed mode, e.g. 128); default: all",
    )
    parser.add_argument("--device", default="cpu", help="torch device for decoding, e.g. cuda:0")
    parser.add_argument(
        "--torch-threads", type=int, default=0, help="torch intra-op threads; 0 leaves torch's default"
    )
    return parser.parse_args(argv)


# vLLM spawns its engine workers; they re-import this module, so start only under __main__.
if __name__ == "__main__":
    asyncio.run(serve_baseline(parse_args()))
