"""`/v1/audio/speech/stream`: text streamed in, audio streamed out, as gRPC SynthesizeStream.

In: JSON text messages, a config first ({"type": "config", "voice", "response_format",
"speed", "model", "input"}), then {"type": "text", "text"} deltas, {"type": "flush"} and
{"type": "end"}. Out: binary messages of audio in the format, then {"type": "summary", ...}
and close 1000. An error is {"type": "error", "error": {...}} and a close code: 1008 for a
bad request, 1013 when the gateway is full or an upstream unavailable, 1011 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.json_format import MessageToDict
from starlette.websockets import WebSocket, WebSocketDisconnect

from voxserve.common.logging import get_logger
from voxserve.common.status import CallError, InvalidArgument
from voxserve.gateway.config import GatewayConfig
from voxserve.gateway.http.errors import ApiError
from voxserve.gateway.http.models import ServedModel
from voxserve.gateway.http.speech_route import string_field, voice_and_output
from voxserve.gateway.speech import AudioPiece, SpeechCore
from voxserve.gateway.text_input import TextInput
from voxserve.v1 import speech_pb2

log = get_logger(__name__)

NORMAL, POLICY, INTERNAL, TRY_AGAIN = 1000, 1008, 1011, 1013
_Inbound = speech_pb2.SynthesizeStreamRequest | BaseException | None


def summary_json(summary: speech_pb2.Summary) -> dict[str, Any]:
    """The summary as JSON numbers: protobuf's JSON form writes 64-bit integers as strings."""
    fields = MessageToDict(
        summary, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    fields["samples"] = summary.samples
    fields["timeline"]["segments"] = [
        {**segment, "samples": timing.samples}
        for segment, timing in zip(fields["timeline"]["segments"], summary.timeline.segments, strict=True)
    ]
    return fields


def close_code(error: ApiError) -> int:
    if error.status in (429, 503):
        return TRY_AGAIN
    return POLICY if error.status < 500 else INTERNAL


def stream_request(text: str) -> speech_pb2.SynthesizeStreamRequest:
    """A text message of the socket as the gRPC stream's message."""
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"type: a message is not JSON: {exc}") from exc
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "text" and isinstance(message.get("text"), str):
        return speech_pb2.SynthesizeStreamRequest(text=message["text"])
    if kind == "flush":
        return speech_pb2.SynthesizeStreamRequest(flush=speech_pb2.Flush())
    if kind == "end":
        return speech_pb2.SynthesizeStreamRequest(end=speech_pb2.EndOfInput())
    raise InvalidArgument(
        "type: after the config, a message is {'type': 'text', 'text': str}, {'type': 'flush'} or "
        "{'type': 'end'}"
    )


class SpeechSocket:
    def __init__(self, core: SpeechCore, model: ServedModel, config: GatewayConfig) -> None:
        self.core = core
        self.model = model
        self.config = config

    async def run(self, socket: WebSocket) -> None:
        arrived = time.monotonic()
        await socket.accept()
        inbox: asyncio.Queue[_Inbound] = asyncio.Queue()
        reader = asyncio.create_task(_read(socket, inbox))
        speaker = asyncio.create_task(self._speak(socket, inbox, arrived))
        try:
            await asyncio.wait((reader, speaker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (speaker, reader):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                        await task
        if speaker.cancelled() or not speaker.done():
            log.info("client closed the socket: synthesis cancelled")

    async def _speak(self, socket: WebSocket, inbox: asyncio.Queue[_Inbound], arrived: float) -> None:
        try:
            first = await inbox.get()
            if isinstance(first, BaseException):
                raise first
            config = await self._config(first)
            await self._synthesize(socket, config, _requests(inbox), arrived)
        except CallError as exc:
            await _fail(socket, ApiError.of(exc))
        except ApiError as exc:
            await _fail(socket, exc)

    async def _config(self, first: speech_pb2.SynthesizeStreamRequest | None) -> dict[str, Any]:
        if first is None or first.WhichOneof("message") != "text":
            raise InvalidArgument("type: the first message must be {'type': 'config', ...}")
        try:
            config = json.loads(first.text)
        except ValueError as exc:
            raise InvalidArgument(f"type: the config is not JSON: {exc}") from exc
        if not isinstance(config, dict) or config.get("type") != "config":
            raise InvalidArgument("type: the first message must be {'type': 'config', ...}")
        return config

    async def _synthesize(
        self,
        socket: WebSocket,
        config: dict[str, Any],
        requests: AsyncIterator[speech_pb2.SynthesizeStreamRequest],
        arrived: float,
    ) -> None:
        if "model" in config:
            self.model.check(config["model"])
        first_text = string_field(config, "input", "")
        voice, output = await voice_and_output(
            self.core, self.config, config, socket.state.voice_scope, "pcm"
        )
        text_input = TextInput(
            requests,
            first_text=first_text,
            max_chars=self.config.max_stream_text_chars,
            segment_max_chars=self.config.segment_max_chars,
        )
        synthesis = self.core.synthesis(voice, speech_pb2.SynthesizeRequest(voice=voice.id))
        try:
            async for item in self.core.stream(
                synthesis, text_input.texts(), output, arrived, check=text_input.check
            ):
                if isinstance(item, AudioPiece):
                    await socket.send_bytes(item.data)
                else:
                    await socket.send_json(
                        {"type": "summary", "response_format": output.format.name, **summary_json(item)}
                    )
        finally:
            text_input.close()
        await socket.close(NORMAL)


async def _read(socket: WebSocket, inbox: asyncio.Queue[_Inbound]) -> None:
    """Every message the client sends, in order, until it closes (the end of the task)."""
    first = True
    while True:
        message = await socket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            inbox.put_nowait(InvalidArgument("type: messages to the server are JSON text, not binary"))
        elif first:
            # The config is read by the speaker as a whole; the rest are stream messages.
            inbox.put_nowait(speech_pb2.SynthesizeStreamRequest(text=text))
        else:
            try:
                inbox.put_nowait(stream_request(text))
            except InvalidArgument as exc:
                inbox.put_nowait(exc)
        first = False


async def _requests(inbox: asyncio.Queue[_Inbound]) -> AsyncIterator[speech_pb2.SynthesizeStreamRequest]:
    while (item := await inbox.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item


async def _fail(socket: WebSocket, error: ApiError) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await socket.send_json({"type": "error", **error.body()})
        await socket.close(close_code(error))
