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
from pathlib import Path
from typing import cast

import grpc
import torch

from bench.seed_loop import SeedDecodeLoop
from voxserve.common.logging import get_logger
from voxserve.common.request_id import current_request_id
from voxserve.common.status import InvalidArgument
from voxserve.gateway.pipeline import SegmentJob, UpstreamError
from voxserve.generator.frames import Frame
from voxserve.generator.servicer import frame_to_proto, parse_generate_request
from voxserve.generator.token_source import TokenSource
from voxserve.v1 import vocoder_pb2
from voxserve.vocoder.codecs.base import CodecInputError, VoiceConditioning
from voxserve.vocoder.codecs.bicodec import BiCodec

log = get_logger(__name__)


class MonolithicRunner:
    """A `SegmentRunner` that generates and decodes in one process, one loop per request.

    Like the gateway's own runner it reports progress in the segment's `SegmentStats`, which the
    gateway's `Synthesis` waits on: the voice (`global_ids`, `voice_known`) once the engine sends
    it, the tokens taken into the decode loop (`tokens_forwarded`), and `generated` once the
    engine's last frame has arrived. A segment that never reports `generated` leaves the call
    open after its last audio (the next segment, or the end of the text, waits for it).
    """

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

    async def __call__(self, job: SegmentJob) -> AsyncIterator[vocoder_pb2.AudioChunk]:
        """Audio chunks of one segment; the seed is unused (BiCodec decoding is deterministic)."""
        request, codec, stats, deadline_seconds = (
            job.request,
            job.family.codec,
            job.stats,
            job.deadline_seconds,
        )
        if codec != self.codec.name or job.s3_prompt is not None:
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
        stats.tokens_forwarded = 0
        # An async generator in practice; closing it aborts the engine request when the caller leaves.
        frames = cast(
            AsyncGenerator[Frame, None],
            self.generator.generate(args, current_request_id() or "baseline"),
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
                        # Later segments of the request speak in this voice.
                        stats.global_ids = tuple(frame.global_ids)
                        stats.voice_known.set()
                    if frame.semantic_ids:
                        if loop is None:
                            raise UpstreamError(
                                "generator", grpc.StatusCode.INTERNAL, "semantic ids before global ids"
                            )
                        if stats.first_token_at is None:
                            stats.first_token_at = time.monotonic()
                        # Each token in the loop becomes samples of this segment (windowed mode
                        # may end short, but the loop's held 50 ms tail always follows).
                        stats.tokens_forwarded += len(frame.semantic_ids)
                        for chunk in await loop.add(list(frame.semantic_ids)):
                            yield chunk
                    if frame.result is not None:
                        stats.result.CopyFrom(frame_to_proto(frame).result)
            # The engine is done: the next segment (or the end of the call) need not wait for
            # this one's closing decode.
            stats.generated.set()
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
    from voxserve.gateway.voice_directory import VoiceDirectory
    from voxserve.gateway.voices import VoiceRegistry

    config = gateway_config.load(host=args.host, port=args.port, metrics_port=args.metrics_port)
    configure_logging("baseline", config.log_level)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    runner = build_runner(args.pack, args.window_tokens, args.device)
    servicer = SpeechServicer(VoiceDirectory(VoiceRegistry.builtin()), runner, config)

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
