"""`POST /v1/audio/speech`: OpenAI's request, streamed as audio bytes or as SSE events."""

from __future__ import annotations

import base64
import json
import math
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from voxserve.gateway.config import GatewayConfig
from voxserve.gateway.http.audio_formats import FORMATS, OpenAIAudio
from voxserve.gateway.http.errors import ApiError, bad_request
from voxserve.gateway.http.models import ServedModel
from voxserve.gateway.http.streaming import Item, StreamedBody
from voxserve.gateway.speech import AudioPiece, SpeechCore
from voxserve.gateway.tempo import MAX_SPEED, MIN_SPEED
from voxserve.gateway.voices import Voice
from voxserve.v1 import speech_pb2

STREAM_FORMATS = ("audio", "sse")
# A request body is a few fields and the text: anything this large is not one.
MAX_BODY_BYTES = 1024 * 1024


async def json_body(request: Request) -> dict[str, Any]:
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body has {size} bytes; the limit is {MAX_BODY_BYTES}")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body has {len(body)} bytes; the limit is {MAX_BODY_BYTES}")
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("body", f"the body is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise bad_request("body", "the body must be a JSON object")
    return parsed


def string_field(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if value is None:
        raise bad_request(name, f"{name} is required")
    if not isinstance(value, str):
        raise bad_request(name, f"{name} must be a string")
    return value


def choice_field(body: dict[str, Any], name: str, choices: tuple[str, ...] | list[str], default: str) -> str:
    value = string_field(body, name, default)
    if value not in choices:
        raise bad_request(name, f"{name} {value[:32]!r} is not supported; supported: {', '.join(choices)}")
    return value


def speed_field(body: dict[str, Any]) -> float:
    speed = body.get("speed", 1.0)
    if speed is None:
        return 1.0
    if isinstance(speed, bool) or not isinstance(speed, int | float) or not math.isfinite(speed):
        raise bad_request("speed", f"speed must be a number from {MIN_SPEED} to {MAX_SPEED}")
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise bad_request("speed", f"speed {speed} is out of range; allowed {MIN_SPEED}..{MAX_SPEED}")
    return float(speed)


def sse_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def usage(summary: speech_pb2.Summary) -> dict[str, int]:
    """OpenAI's usage: the prompt's tokens in, the audio tokens generated out."""
    return {
        "input_tokens": summary.prompt_tokens,
        "output_tokens": summary.semantic_tokens,
        "total_tokens": summary.prompt_tokens + summary.semantic_tokens,
    }


async def voice_and_output(
    core: SpeechCore, config: GatewayConfig, fields: dict[str, Any], scope: str, default_format: str
) -> tuple[Voice, OpenAIAudio]:
    """The request's voice (of the caller's scope) and its audio output: format and speed."""
    voice_id = string_field(fields, "voice")
    response_format = choice_field(fields, "response_format", list(FORMATS), default_format)
    speed = speed_field(fields)
    voice = await core.voice(scope, voice_id, field="voice")
    rate = voice.family.sample_rate
    return voice, OpenAIAudio(response_format, rate, speed, opus_bitrate=config.opus_bitrate)


class SpeechRoute:
    def __init__(self, core: SpeechCore, model: ServedModel, config: GatewayConfig) -> None:
        self.core = core
        self.model = model
        self.config = config

    async def create(self, request: Request) -> Response:
        arrived = time.monotonic()
        body = await json_body(request)
        self.model.check(body.get("model"))
        text = self.core.text(string_field(body, "input"), field="input")
        stream_format = choice_field(body, "stream_format", STREAM_FORMATS, "audio")
        string_field(body, "instructions", "")  # accepted; these models take no instructions
        voice, output = await voice_and_output(self.core, self.config, body, request.state.voice_scope, "mp3")
        synthesis = self.core.synthesis(voice, speech_pb2.SynthesizeRequest(text=text, voice=voice.id))
        items = self.core.stream(synthesis, self.core.segments(text), output, arrived)
        if stream_format == "sse":
            return StreamedBody(
                items,
                "text/event-stream",
                sse_frame,
                frame_error=lambda error: sse_event({"type": "error", **error.body()}),
                headers={"cache-control": "no-cache"},
            )
        return StreamedBody(items, output.media_type, audio_frame)


def audio_frame(item: Item) -> bytes:
    return item.data if isinstance(item, AudioPiece) else b""


def sse_frame(item: Item) -> bytes:
    if isinstance(item, AudioPiece):
        return sse_event({"type": "speech.audio.delta", "audio": base64.b64encode(item.data).decode("ascii")})
    # OpenAI's event has the usage alone; `summary` adds voxserve's own figures for the request.
    summary = {
        "request_id": item.request_id,
        "first_audio_seconds": item.first_audio_seconds,
        "total_seconds": item.total_seconds,
        "audio_seconds": item.audio_seconds,
        "samples": item.samples,
    }
    return sse_event({"type": "speech.audio.done", "usage": usage(item), "summary": summary})
