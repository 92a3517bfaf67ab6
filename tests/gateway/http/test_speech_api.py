"""`POST /v1/audio/speech` and the model and voice lists through the official `openai` SDK,
against the session stack's gateway (three real services on localhost)."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import openai
import pytest
import soundfile

from voxserve.stack import LocalStack

TEXT = "The quick brown fox jumps over the lazy dog. It was not amused."
RATE = 24000


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack.ports.http_url("/v1"), api_key="unused", max_retries=0) as sdk:
        yield sdk


def speech_bytes(client: openai.OpenAI, **fields: object) -> tuple[bytes, dict[str, str]]:
    arguments = {"model": "tts-1", "voice": "default", "input": TEXT, **fields}
    with client.audio.speech.with_streaming_response.create(**arguments) as response:  # type: ignore[arg-type]
        return response.read(), dict(response.headers)


def decoded(data: bytes, response_format: str) -> tuple[np.ndarray, int]:
    """Samples and rate, by a decoder independent of the encoder (libsndfile or FFmpeg)."""
    if response_format == "pcm":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768, RATE
    if response_format == "wav":
        # A streamed file's header cannot know its length (sizes 0xFFFFFFFF): read to the end.
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            blocks = []
            while len(block := sound.read(8192, dtype="float32")):
                blocks.append(block)
            return np.concatenate(blocks), sound.samplerate
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        return np.concatenate(frames), stream.rate


def sse_events(data: bytes) -> list[dict[str, object]]:
    events = [json.loads(line[len(b"data: ") :]) for line in data.split(b"\n") if line.startswith(b"data: ")]
    assert data.endswith(b"\n\n")
    return events


def test_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["voxserve"]


def test_voices_are_listed_like_list_voices(stack: LocalStack, client: openai.OpenAI) -> None:
    listed = client.get("/audio/voices", cast_to=object)
    assert isinstance(listed, dict)
    ids = [v["id"] for v in listed["data"]]
    assert ids[:3] == ["default", "female", "male"]
    assert {v["family"] for v in listed["data"]} == {"spark"}


@pytest.mark.parametrize("response_format", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_response_format_decodes_to_the_speech(client: openai.OpenAI, response_format: str) -> None:
    data, headers = speech_bytes(client, response_format=response_format)
    samples, rate = decoded(data, response_format)
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    assert len(headers["x-request-id"]) >= 16
    # Opus is decoded at its codec's 48 kHz; every other format is 24 kHz like OpenAI's.
    assert rate == (48000 if response_format == "opus" else RATE)
    seconds = len(samples) / rate
    assert seconds > 0.5
    # The speech itself is random (a tiny random model), so lengths differ between requests: each
    # decoded length is checked against the SSE summary of the same request in the test below.
    assert float(np.max(np.abs(samples))) > 1e-3


@pytest.mark.parametrize("response_format", ["wav", "flac", "pcm", "mp3"])
def test_sse_deltas_decode_to_the_summarised_length(client: openai.OpenAI, response_format: str) -> None:
    data, headers = speech_bytes(client, response_format=response_format, stream_format="sse")
    assert headers["content-type"].startswith("text/event-stream")
    events = sse_events(data)
    *deltas, done = events
    assert {e["type"] for e in deltas} == {"speech.audio.delta"} and done["type"] == "speech.audio.done"
    usage = done["usage"]
    assert isinstance(usage, dict) and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    audio = b"".join(base64.b64decode(str(e["audio"])) for e in deltas)
    samples, rate = decoded(audio, response_format)
    summary = done["summary"]
    assert isinstance(summary, dict) and summary["request_id"] == headers["x-request-id"]
    expected = int(summary["samples"])
    if response_format == "mp3":  # the decoder adds the encoder's delay and frame padding
        assert expected <= len(samples) <= expected + 2 * 1152 + 529
    else:
        assert len(samples) == expected
    assert rate == RATE


def test_the_body_streams_before_synthesis_ends(client: openai.OpenAI) -> None:
    """First bytes reach the client while the server is still producing: the arrival of the
    first delta precedes the done event by about what the server's summary says lay between
    its first audio and its end."""
    # One segment the session stack's vocoder takes whole (its stream cap is 600 tokens).
    long_text = TEXT + " Then it ran off."
    arrivals: list[tuple[float, bytes]] = []
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="default", input=long_text, response_format="pcm", stream_format="sse"
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic(), line.encode()))
    first_at, done_at = arrivals[0][0], arrivals[-1][0]
    done = json.loads(arrivals[-1][1][len(b"data: ") :])
    summary = done["summary"]
    produced_after_first = summary["total_seconds"] - summary["first_audio_seconds"]
    assert len(arrivals) > 3
    assert produced_after_first > 0
    assert done_at - first_at >= 0.5 * produced_after_first


def test_speed_stretches_without_changing_the_rate(client: openai.OpenAI) -> None:
    def summarised(speed: float) -> tuple[float, float]:
        data, _ = speech_bytes(client, response_format="pcm", stream_format="sse", speed=speed)
        done = sse_events(data)[-1]
        summary = done["summary"]
        assert isinstance(summary, dict)
        usage = done["usage"]
        assert isinstance(usage, dict)
        return float(summary["audio_seconds"]), float(usage["output_tokens"])

    normal, normal_tokens = summarised(1.0)
    fast, fast_tokens = summarised(2.0)
    # Seconds per generated token: the spoken rate, independent of how long each answer ran.
    assert fast / fast_tokens == pytest.approx(normal / normal_tokens / 2, rel=0.05)


@pytest.mark.parametrize(
    ("fields", "status", "param"),
    [
        ({"voice": "nobody"}, 400, "voice"),
        ({"response_format": "ogg"}, 400, "response_format"),
        ({"speed": 5.0}, 400, "speed"),
        ({"speed": 0.1}, 400, "speed"),
        ({"stream_format": "chunks"}, 400, "stream_format"),
        ({"input": ""}, 400, "input"),
        ({"input": "x" * 2001}, 400, "input"),
        ({"model": "whisper-1"}, 404, "model"),
    ],
)
def test_bad_requests_are_sdk_errors_naming_the_field(
    client: openai.OpenAI, fields: dict[str, object], status: int, param: str
) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        speech_bytes(client, **fields)
    error = raised.value
    assert error.status_code == status
    assert isinstance(error.body, dict) and error.body["param"] == param
    assert param in error.message or (param == "model" and "whisper-1" in error.message)
    if "speed" in fields:
        assert "0.25..4.0" in error.message


def test_thirty_two_concurrent_streams_all_complete_with_full_audio(client: openai.OpenAI) -> None:
    def one(index: int) -> tuple[int, int]:
        data, _ = speech_bytes(
            client,
            input=f"Stream number {index} is speaking now.",
            response_format="pcm",
            stream_format="sse",
        )
        *deltas, done = sse_events(data)
        received = sum(len(base64.b64decode(str(e["audio"]))) for e in deltas)
        summary = done["summary"]
        assert isinstance(summary, dict)
        return received // 2, int(summary["samples"])

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(one, range(32)))
    assert len(results) == 32
    for received, expected in results:
        assert received == expected > 0
