"""Shared by the vocoder tests: voices, token streams, a recording codec, a stream driver."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import random
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
import torch

from voxserve.v1 import vocoder_pb2, vocoder_pb2_grpc
from voxserve.vocoder.codecs.base import DecodeRow, VoiceConditioning
from voxserve.vocoder.codecs.bicodec import BiCodec
from voxserve.vocoder.scheduler import Scheduler, SchedulerLimits
from voxserve.vocoder.servicer import VocoderServicer
from voxserve.vocoder.stream import Chunk, ChunkPolicy


class RecordingCodec:
    """Wraps a codec and records each forward's batch shape and the most forwards in progress at
    once (forwards may run on several lanes); can be told to fail."""

    def __init__(self, codec: BiCodec, fail: bool = False):
        self.inner = codec
        self.shapes: list[tuple[int, int]] = []
        self.fail = fail
        self.most_at_once = 0
        self._at_once = 0
        self._lock = threading.Lock()
        for name in (
            "name",
            "sample_rate",
            "samples_per_token",
            "token_vocab_size",
            "receptive_field_tokens",
            "codes_per_token",
        ):
            setattr(self, name, getattr(codec, name))

    @property
    def batch_sizes(self) -> list[int]:
        return [rows for rows, _ in self.shapes]

    def condition(self, voice: VoiceConditioning) -> torch.Tensor:
        return self.inner.condition(voice)

    def open_stream(self, conditioning: torch.Tensor, seed: int) -> None:
        return self.inner.open_stream(conditioning, seed)

    def static_forward(self) -> None:
        return None  # every forward goes through decode_windows, which records it

    def decode_windows(self, rows: Sequence[DecodeRow]) -> list[torch.Tensor]:
        with self._lock:
            self.shapes.append((len(rows), rows[0].window.length))
            self._at_once += 1
            self.most_at_once = max(self.most_at_once, self._at_once)
        try:
            return self.forward(rows)
        finally:
            with self._lock:
                self._at_once -= 1

    def forward(self, rows: Sequence[DecodeRow]) -> list[torch.Tensor]:
        if self.fail:
            raise RuntimeError("device lost")
        return self.inner.decode_windows(rows)


def voice(seed: int) -> VoiceConditioning:
    rng = random.Random(seed)
    return VoiceConditioning(global_ids=tuple(rng.randrange(4096) for _ in range(32)))


def tokens_for(seed: int, n: int) -> list[int]:
    rng = random.Random(1000 + seed)
    return [rng.randrange(8192) for _ in range(n)]


def offline(codec: BiCodec, v: VoiceConditioning, tokens: list[int]) -> torch.Tensor:
    if not tokens:
        return torch.zeros(0)
    return codec.decode(torch.tensor([tokens]), codec.condition(v)[None])[0]


async def stream_through(
    scheduler: Scheduler,
    v: VoiceConditioning,
    tokens: list[int],
    frame: int,
    rng: random.Random,
    *,
    start_delay: float = 0.0,
    pause: float = 0.004,
) -> list[Chunk]:
    """Feed tokens in frames with random pauses (as a generator would), then End; collect chunks."""
    await asyncio.sleep(start_delay)
    stream = scheduler.register(scheduler.codec.condition(v))
    chunks: list[Chunk] = []

    async def collect() -> None:
        while True:
            item = await stream.outbox.get()
            assert isinstance(item, Chunk), item
            chunks.append(item)
            if item.final:
                return

    collector = asyncio.create_task(collect())
    for i in range(0, len(tokens), frame):
        stream.append(tokens[i : i + frame])
        scheduler.notify()
        await asyncio.sleep(rng.random() * pause)
    stream.end()
    scheduler.notify()
    await asyncio.wait_for(collector, 120)
    scheduler.remove(stream)
    return chunks


def joined(chunks: list[Chunk]) -> torch.Tensor:
    return torch.cat([c.samples for c in chunks]) if chunks else torch.zeros(0)


def refused(address: str, messages: list[vocoder_pb2.DecodeRequest]) -> grpc.RpcError:
    """Send a stream the server must refuse; return its error. This uses the blocking client:
    the asyncio one reports an INTERNAL of its own instead of the server's status when a write
    races the server ending the call."""
    with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as caught:
        list(vocoder_pb2_grpc.VocoderStub(channel).Decode(iter(messages), timeout=60))
    return caught.value


def assert_equals_published_table(shapes: dict[str, tuple[int, ...]], sha256: str, table: str) -> None:
    """`shapes` equal a published decode-key table (`specs/<table>`): always by the sha256 of
    its sorted "name<TAB>shape" rows, and row by row where the specs are beside the checkout."""
    rows = "\n".join(f"{name}\t{shape}" for name, shape in sorted(shapes.items()))
    assert hashlib.sha256(rows.encode()).hexdigest() == sha256
    candidates = [
        Path(__file__).resolve().parents[4] / "shared" / "specs" / table,
        Path("/work/shared/specs") / table,
    ]
    tsv = next((p for p in candidates if p.is_file()), None)
    if tsv is not None:
        published = {}
        for line in tsv.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                name, shape = line.split("\t")
                published[name] = tuple(ast.literal_eval(shape))
        assert shapes == published


@contextlib.asynccontextmanager
async def serving(
    codec: Any, policy: ChunkPolicy, *, max_stream_tokens: int, limits: SchedulerLimits | None = None
) -> AsyncIterator[tuple[str, Scheduler]]:
    """A real gRPC Decode server for `codec` on a free port: its address and scheduler."""
    scheduler = Scheduler(codec, policy, limits)
    scheduler.start()
    server = grpc.aio.server()
    vocoder_pb2_grpc.add_VocoderServicer_to_server(
        VocoderServicer(codec, scheduler, max_stream_tokens=max_stream_tokens), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", scheduler
    finally:
        await server.stop(None)
        await scheduler.stop()
