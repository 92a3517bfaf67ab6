"""The baseline's decode loop behind the `voxserve.v1.Vocoder` API, for the vocoder-tier benchmark.

Each Decode stream runs the seed's per-request loop (`SeedDecodeLoop`: first decode at 10 tokens,
then every 48 re-decoding the whole buffer, 50 ms crossfades, the closing whole-buffer decode),
each decode in a worker thread of its own, with no batching across streams. On an S3Gen or SNAC
pack the same loop runs at the same audio durations with the codec's whole-utterance decode
(`bench.codec_seed_loop`).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from bench.codec_seed_loop import WholeBufferLoop
from bench.seed_loop import SeedDecodeLoop
from voxserve.common.status import InvalidArgument
from voxserve.families.pack import Pack
from voxserve.v1 import vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder.codecs.base import Codec, CodecInputError
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.codecs.registry import build_codec
from voxserve.vocoder.servicer import validate_token_ids, voice_conditioning


class BaselineVocoderServicer(vocoder_pb2_grpc.VocoderServicer):
    def __init__(self, codec: Codec, window_tokens: int | None = None):
        self.codec = codec
        self.window_tokens = window_tokens

    async def _open(
        self, requests: AsyncIterator[vocoder_pb2.DecodeRequest]
    ) -> SeedDecodeLoop | WholeBufferLoop:
        first = await anext(requests, None)
        if first is None or first.WhichOneof("message") != "start":
            raise InvalidArgument("the first message of a Decode stream must be start")
        try:
            voice = voice_conditioning(first.start)
            conditioning = await asyncio.to_thread(self.codec.condition, voice)
        except CodecInputError as exc:
            raise InvalidArgument(f"start.{exc}") from exc
        if isinstance(self.codec, BiCodec):
            return SeedDecodeLoop(self.codec, conditioning, self.window_tokens)
        return WholeBufferLoop(self.codec, conditioning, first.start.seed)

    async def Decode(
        self, request_iterator: AsyncIterator[vocoder_pb2.DecodeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[vocoder_pb2.AudioChunk]:
        try:
            loop = await self._open(request_iterator)
            async for request in request_iterator:
                kind = request.WhichOneof("message")
                if kind == "end":
                    break
                if kind != "frame":
                    raise InvalidArgument(f"unexpected {kind} message")
                ids = list(request.frame.token_ids)
                validate_token_ids(ids, self.codec.token_vocab_size)
                for chunk in await loop.add(ids):
                    yield chunk
            for chunk in await loop.close():
                yield chunk
        except InvalidArgument as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))


async def serve(pack: Path, port: int, device: str, window_tokens: int | None) -> None:
    codec = build_codec(Pack.open(pack), device=device)
    server = grpc.aio.server()
    vocoder_pb2_grpc.add_VocoderServicer_to_server(BaselineVocoderServicer(codec, window_tokens), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await server.wait_for_termination()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.baseline_vocoder",
        description="Serve voxserve.v1.Vocoder from the baseline's per-request decode loop.",
    )
    parser.add_argument("--pack", type=Path, required=True, help="model pack directory")
    parser.add_argument("--port", type=int, required=True, help="gRPC port on 127.0.0.1")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda:0")
    parser.add_argument("--window-tokens", type=int, default=None, help="the seed's windowed mode, e.g. 128")
    parser.add_argument("--torch-threads", type=int, default=0, help="0 leaves torch's default")
    args = parser.parse_args(argv)
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    asyncio.run(serve(args.pack, args.port, args.device, args.window_tokens))


if __name__ == "__main__":
    main()
