"""A response body produced while the client listens: headers wait for the first item (so an
error before any audio still gets its own status), and a client that goes away cancels the
producer, which ends the synthesis and its upstream calls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from voxserve.common.logging import get_logger
from voxserve.common.status import CallError
from voxserve.gateway.http.errors import ApiError
from voxserve.gateway.speech import AudioPiece
from voxserve.v1 import speech_pb2

log = get_logger(__name__)

Item = AudioPiece | speech_pb2.Summary
Framing = Callable[[Item], bytes]
"""The bytes an item becomes in the body (b"": nothing)."""
ErrorFraming = Callable[[ApiError], bytes | None]
"""What a failure after the headers becomes (None: the connection is cut, the body incomplete)."""


class StreamedBody(Response):
    def __init__(
        self,
        items: AsyncGenerator[Item, None],
        media_type: str,
        frame: Framing,
        frame_error: ErrorFraming = lambda error: None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(media_type=media_type, headers=headers)
        # The length is unknown until the end: the body goes out chunked.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.items = items
        self.frame = frame
        self.frame_error = frame_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        producer = asyncio.create_task(self._produce(scope, receive, send))
        watcher = asyncio.create_task(_disconnected(receive))
        finished = False
        try:
            await asyncio.wait((producer, watcher), return_when=asyncio.FIRST_COMPLETED)
            finished = producer.done()
        finally:
            watcher.cancel()
            if not producer.done():
                producer.cancel()
                log.info("client went away: synthesis cancelled")
                with contextlib.suppress(asyncio.CancelledError):
                    await producer
        if finished:
            producer.result()

    async def _produce(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with contextlib.aclosing(self.items) as items:
            try:
                first = await anext(items, None)
            except CallError as exc:
                await ApiError.of(exc).response()(scope, receive, send)
                return
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            item = first
            try:
                while item is not None:
                    if data := self.frame(item):
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                    item = await anext(items, None)
            except CallError as exc:
                error = ApiError.of(exc)
                log.warning("speech failed after its first bytes", status=error.status, error=error.message)
                framed = self.frame_error(error)
                if framed is None:
                    return  # the body stays incomplete (uvicorn closes it): the client sees a failed transfer
                await send({"type": "http.response.body", "body": framed, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
