"""`/v1/audio/speech/stream`: text streamed in over a WebSocket, audio streamed out, against the
session stack's gateway (three real services on localhost)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from voxserve.scrape import scrape
from voxserve.stack import LocalStack

SENTENCES = ("The first sentence is here. ", "A second one follows it. ", "And a third ends the text. ")
# Several segments of audio: far more than the client waits for before it goes away.
LONG_TEXT = " ".join(f"Sentence number {n} of a long reading keeps the voice busy." for n in range(12))
# What a WebSocket's idle state is checked against: every service's live work.
ACTIVE_GAUGES = {
    "gateway": ("voxserve_gateway_active_requests",),
    "generator": ("voxserve_generator_active_requests", "voxserve_generator_engine_requests"),
    "vocoder": ("voxserve_vocoder_active_streams",),
}
GENERATOR_CANCELLED = 'voxserve_generator_requests_total{outcome="cancelled"}'


def socket_url(stack: LocalStack, query: str = "") -> str:
    return f"ws://127.0.0.1:{stack.ports.gateway_http}/v1/audio/speech/stream{query}"


@contextmanager
def speech_socket(url: str, **config: Any) -> Iterator[ClientConnection]:
    with connect(url, open_timeout=10, close_timeout=10) as socket:
        socket.send(json.dumps({"type": "config", "voice": "default", "response_format": "pcm", **config}))
        yield socket


def audio_for(socket: ClientConnection, seconds: float) -> int:
    """The audio bytes that arrive within `seconds` (a JSON message here is a failure)."""
    received = 0
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = socket.recv(timeout=left)
        except TimeoutError:
            break
        assert isinstance(message, bytes), f"expected audio, got {message!r}"
        received += len(message)
    return received


def until_summary(socket: ClientConnection, timeout: float = 120) -> tuple[int, dict[str, Any]]:
    """The audio bytes before the closing JSON message, and that message."""
    received = 0
    deadline = time.monotonic() + timeout
    while True:
        message = socket.recv(timeout=deadline - time.monotonic())
        if isinstance(message, bytes):
            received += len(message)
            continue
        return received, json.loads(message)


def closed_code(socket: ClientConnection) -> int | None:
    """The close code, once the server has closed (nothing more may come before it)."""
    with pytest.raises(ConnectionClosed):
        socket.recv(timeout=10)
    return socket.close_code


def active_work(stack: LocalStack) -> dict[str, float]:
    values: dict[str, float] = {}
    for service, gauges in ACTIVE_GAUGES.items():
        scraped = scrape(stack.ports.metrics_url(service))
        values |= {gauge: scraped[gauge] for gauge in gauges}
    return values


def wait_no_active_work(stack: LocalStack, seconds: float = 10) -> dict[str, float]:
    """Every service's live-work gauges, once all are 0 (or as they stand at the deadline)."""
    deadline = time.monotonic() + seconds
    while any((work := active_work(stack)).values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return work


def test_audio_arrives_while_text_still_comes_and_the_summary_counts_every_sample(stack: LocalStack) -> None:
    with speech_socket(socket_url(stack)) as socket:
        before_end = 0
        for sentence in SENTENCES:
            socket.send(json.dumps({"type": "text", "text": sentence}))
            before_end += audio_for(socket, 2.5)
        assert before_end > 0, "no audio before the end of input"
        socket.send(json.dumps({"type": "end"}))
        after_end, summary = until_summary(socket)
        assert closed_code(socket) == 1000
    received = before_end + after_end
    assert summary["type"] == "summary" and summary["response_format"] == "pcm"
    assert received % 2 == 0 and int(summary["samples"]) == received // 2
    assert summary["audio_seconds"] == pytest.approx(received / 2 / 24000, abs=1e-3)
    assert 0 < summary["first_audio_seconds"] < summary["total_seconds"]
    assert len(summary["request_id"]) >= 16
    timeline = summary["timeline"]
    assert len(timeline["segments"]) == summary["segments"] == len(SENTENCES)
    assert timeline["done_seconds"] >= timeline["first_audio_seconds"] > 0
    # Each sentence started when it arrived, not when the input ended.
    starts = [segment["started_seconds"] for segment in timeline["segments"]]
    assert starts == sorted(starts) and starts[-1] - starts[0] > 2.5


def test_flush_speaks_an_unfinished_sentence(stack: LocalStack) -> None:
    with speech_socket(socket_url(stack)) as socket:
        socket.send(json.dumps({"type": "text", "text": "This sentence has no end yet and"}))
        assert audio_for(socket, 1.5) == 0, "an unfinished sentence waits for more text"
        socket.send(json.dumps({"type": "flush"}))
        flushed = socket.recv(timeout=30)
        assert isinstance(flushed, bytes) and flushed, "no audio after the flush"
        socket.send(json.dumps({"type": "end"}))
        _, summary = until_summary(socket)
        assert closed_code(socket) == 1000
    assert summary["type"] == "summary" and summary["segments"] == 1


@pytest.mark.parametrize(
    ("config", "param"),
    [
        ({"voice": "no-such-voice"}, "voice"),
        ({"response_format": "ogg"}, "response_format"),
        ({"speed": 9}, "speed"),
    ],
)
def test_a_bad_config_is_refused_with_the_field_and_close_1008(
    stack: LocalStack, config: dict[str, Any], param: str
) -> None:
    with speech_socket(socket_url(stack), **config) as socket:
        message = socket.recv(timeout=10)
        assert isinstance(message, str)
        refusal = json.loads(message)
        assert closed_code(socket) == 1008
    assert refusal["type"] == "error"
    error = refusal["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert param in error["message"]


def test_closing_the_socket_mid_stream_cancels_the_work_everywhere(stack: LocalStack) -> None:
    assert not any(wait_no_active_work(stack).values()), "the stack is busy before the test"
    cancelled = scrape(stack.ports.metrics_url("generator")).get(GENERATOR_CANCELLED, 0)
    with speech_socket(socket_url(stack), input=LONG_TEXT) as socket:
        first = socket.recv(timeout=60)
        assert isinstance(first, bytes) and first
        assert active_work(stack)["voxserve_gateway_active_requests"] == 1
    # The text is many segments long: only a cancellation ends all the work this soon.
    work = wait_no_active_work(stack)
    assert not any(work.values()), work
    assert scrape(stack.ports.metrics_url("generator")).get(GENERATOR_CANCELLED, 0) > cancelled
