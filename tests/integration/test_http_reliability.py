"""The HTTP API's keys, limits, drain, upstream failures, disconnects and CORS, against real
services on 127.0.0.1.

Gateways of their own (keys, a stream limit, a dead vocoder) run in front of the session's
generator and vocoder, so their settings and a SIGTERM never disturb the other tests.
"""

from __future__ import annotations

import base64
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from websockets.sync.client import connect

from tests.gateway.enrolment_harness import voiced, wav_bytes
from tests.gateway.http.test_websocket import (
    GENERATOR_CANCELLED,
    closed_code,
    until_summary,
    wait_no_active_work,
)
from tests.integration.test_reliability import own_services
from voxserve.families.pack import Pack
from voxserve.scrape import scrape
from voxserve.stack import LocalStack, free_port

KEY_A = "key-a-4f1c9e7b2d6a8053"
KEY_B = "key-b-91d04c7e5a3b6f28"
UNKNOWN_KEY = "key-c-0b5e2d97a41f63c8"
ORIGIN = "http://example.test"
# Short segments, each well under the session vocoder's 600 tokens however text is split.
SEGMENT_MAX_CHARS = "90"
SHORT_TEXT = "A short answer."
LONG_TEXT = " ".join(f"Sentence number {n} of a reading keeps the voice busy." for n in range(8))


def speech_body(**fields: Any) -> dict[str, Any]:
    return {"model": "tts-1", "voice": "default", "input": SHORT_TEXT, "response_format": "pcm", **fields}


def sdk(gateway: LocalStack, key: str) -> openai.OpenAI:
    # No retries: a refusal must reach the test as it was sent.
    return openai.OpenAI(base_url=gateway.ports.http_url("/v1"), api_key=key, max_retries=0, timeout=60)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(
    stack: LocalStack, tiny_pack: Pack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    env = {
        "VOXSERVE_GATEWAY_API_KEYS": f"{KEY_A},{KEY_B}",
        "VOXSERVE_GATEWAY_HTTP_CORS_ORIGINS": ORIGIN,
        "VOXSERVE_GATEWAY_SEGMENT_MAX_CHARS": SEGMENT_MAX_CHARS,
    }
    local = own_services(stack, tiny_pack, tmp_path_factory.mktemp("keyed"), ("gateway",), env)
    yield local
    local.stop()


@pytest.fixture(scope="module")
def limited(
    stack: LocalStack, tiny_pack: Pack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """One stream at a time, and a long grace for the drain (the last test here to use it)."""
    env = {
        "VOXSERVE_GATEWAY_MAX_STREAMS": "1",
        "VOXSERVE_GATEWAY_GRACE_SECONDS": "60",
        "VOXSERVE_GATEWAY_SEGMENT_MAX_CHARS": SEGMENT_MAX_CHARS,
    }
    local = own_services(stack, tiny_pack, tmp_path_factory.mktemp("limited"), ("gateway",), env)
    yield local
    local.stop()


def test_v1_needs_a_configured_key_and_probes_and_page_stay_open(keyed: LocalStack) -> None:
    url = keyed.ports.http_url
    for headers in ({}, bearer(UNKNOWN_KEY), {"authorization": KEY_A}):
        refused = httpx.get(url("/v1/models"), headers=headers, timeout=10)
        assert refused.status_code == 401, headers
        error = refused.json()["error"]
        assert error["type"] == "authentication_error" and "API key" in error["message"]
        assert KEY_A not in refused.text
    with (
        sdk(keyed, UNKNOWN_KEY) as wrong,
        pytest.raises(openai.AuthenticationError) as info,
    ):
        wrong.audio.speech.create(model="tts-1", voice="default", input=SHORT_TEXT)
    assert info.value.status_code == 401
    for key in (KEY_A, KEY_B):
        with sdk(keyed, key) as client:
            assert [m.id for m in client.models.list()] == ["voxserve"]
            audio = client.audio.speech.create(
                model="tts-1", voice="default", input=SHORT_TEXT, response_format="pcm"
            )
            assert len(audio.content) > 0 and len(audio.content) % 2 == 0
    assert httpx.get(url("/healthz"), timeout=10).json() == {"status": "ok"}
    assert httpx.get(url("/readyz"), timeout=10).json() == {"status": "ready"}
    page = httpx.get(url("/"), timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_a_voice_enrolled_over_http_belongs_to_its_key(keyed: LocalStack) -> None:
    voices = keyed.ports.http_url("/v1/audio/voices")
    with httpx.Client(timeout=60) as http:

        def listed(key: str) -> list[str]:
            answer = http.get(voices, headers=bearer(key))
            assert answer.status_code == 200
            return [voice["id"] for voice in answer.json()["data"]]

        reference = wav_bytes(voiced(3.0, seed=5))
        created = http.post(
            voices,
            headers=bearer(KEY_A),
            files={"file": ("me.wav", reference, "audio/wav")},
            data={"id": "http-key-a-voice", "consent": "recorded with consent", "description": "mine"},
        )
        assert created.status_code == 201, created.text
        voice = created.json()
        assert voice["id"] == "http-key-a-voice" and voice["object"] == "voice" and voice["stored"]
        assert voice["family"] == "spark" and voice["description"] == "mine"
        assert "http-key-a-voice" in listed(KEY_A)
        assert "http-key-a-voice" not in listed(KEY_B) and "default" in listed(KEY_B)

        speak_a = http.post(
            keyed.ports.http_url("/v1/audio/speech"),
            headers=bearer(KEY_A),
            json=speech_body(voice=voice["id"]),
        )
        assert speak_a.status_code == 200 and len(speak_a.content) > 0
        speak_b = http.post(
            keyed.ports.http_url("/v1/audio/speech"),
            headers=bearer(KEY_B),
            json=speech_body(voice=voice["id"]),
        )
        assert speak_b.status_code == 400 and speak_b.json()["error"]["param"] == "voice"

        not_theirs = http.delete(f"{voices}/http-key-a-voice", headers=bearer(KEY_B))
        assert not_theirs.status_code == 404 and not_theirs.json()["error"]["type"] == "not_found_error"
        assert "http-key-a-voice" in listed(KEY_A)
        deleted = http.delete(f"{voices}/http-key-a-voice", headers=bearer(KEY_A))
        assert deleted.status_code == 200
        assert deleted.json() == {"id": "http-key-a-voice", "object": "voice", "deleted": True}
        assert "http-key-a-voice" not in listed(KEY_A)


def test_a_websocket_passes_its_key_as_a_query_parameter(keyed: LocalStack) -> None:
    url = f"ws://127.0.0.1:{keyed.ports.gateway_http}/v1/audio/speech/stream"
    config = json.dumps({"type": "config", "voice": "default", "response_format": "pcm", "input": SHORT_TEXT})
    with connect(f"{url}?api_key={KEY_B}", open_timeout=10) as socket:
        socket.send(config)
        socket.send(json.dumps({"type": "end"}))
        received, summary = until_summary(socket)
        assert closed_code(socket) == 1000
    assert summary["type"] == "summary" and int(summary["samples"]) == received // 2 > 0
    with connect(f"{url}?api_key={UNKNOWN_KEY}", open_timeout=10) as socket:
        message = socket.recv(timeout=10)
        assert isinstance(message, str)
        assert json.loads(message)["error"]["type"] == "authentication_error"
        assert closed_code(socket) == 1008
    with connect(url, open_timeout=10, additional_headers=bearer(KEY_A)) as socket:
        socket.send(config)
        socket.send(json.dumps({"type": "end"}))
        assert until_summary(socket)[1]["type"] == "summary"


def test_cors_preflight_is_answered_for_the_configured_origin_only(keyed: LocalStack) -> None:
    asked = {"access-control-request-method": "POST", "access-control-request-headers": "authorization"}
    allowed = httpx.options(
        keyed.ports.http_url("/v1/audio/speech"), headers={"origin": ORIGIN, **asked}, timeout=10
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    other = httpx.options(
        keyed.ports.http_url("/v1/audio/speech"), headers={"origin": "http://other.test", **asked}, timeout=10
    )
    assert "access-control-allow-origin" not in other.headers
    simple = httpx.get(
        keyed.ports.http_url("/v1/models"), headers={"origin": ORIGIN, **bearer(KEY_A)}, timeout=10
    )
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


def test_a_second_stream_past_the_limit_gets_429_with_retry_after(limited: LocalStack) -> None:
    url = limited.ports.http_url("/v1/audio/speech")
    with httpx.Client(timeout=120) as http:
        with http.stream("POST", url, json=speech_body(input=LONG_TEXT)) as held:
            assert held.status_code == 200
            # One iterator throughout: dropping one closes the connection, which ends the stream.
            chunks = held.iter_bytes()
            assert next(chunks)
            with sdk(limited, "unused") as client, pytest.raises(openai.RateLimitError) as info:
                client.audio.speech.create(model="tts-1", voice="default", input=SHORT_TEXT)
            assert len(b"".join(chunks)) > 0
        refusal = info.value
        assert refusal.status_code == 429
        assert int(refusal.response.headers["retry-after"]) >= 1
        body = refusal.response.json()["error"]
        assert body["type"] == "rate_limit_error" and "maximum of 1" in body["message"]
        # The held stream has ended: its place is free again.
        after = http.post(url, json=speech_body())
        assert after.status_code == 200 and len(after.content) > 0


def test_a_client_leaving_a_streamed_post_leaves_no_work_anywhere(limited: LocalStack) -> None:
    assert not any(wait_no_active_work(limited).values()), "busy before the test"
    cancelled = scrape(limited.ports.metrics_url("generator")).get(GENERATOR_CANCELLED, 0)
    with httpx.Client(timeout=120) as http:
        url = limited.ports.http_url("/v1/audio/speech")
        with http.stream("POST", url, json=speech_body(input=LONG_TEXT)) as response:
            assert response.status_code == 200
            assert next(response.iter_bytes())
    # The own gateway's gauge, and the session's generator's and vocoder's (the same ports).
    work = wait_no_active_work(limited)
    assert not any(work.values()), work
    # Ended by a cancellation, not by running to its end within the wait.
    assert scrape(limited.ports.metrics_url("generator")).get(GENERATOR_CANCELLED, 0) > cancelled


def test_sigterm_drains_a_stream_to_its_end_while_readyz_says_draining(limited: LocalStack) -> None:
    url = limited.ports.http_url
    events: list[dict[str, Any]] = []
    first_event = threading.Event()
    failure: list[BaseException] = []

    def listen() -> None:
        try:
            body = speech_body(input=LONG_TEXT, stream_format="sse")
            with httpx.stream("POST", url("/v1/audio/speech"), json=body, timeout=120) as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line.removeprefix("data: ")))
                        first_event.set()
        except BaseException as exc:  # reported by the test's thread
            failure.append(exc)
            first_event.set()

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert first_event.wait(60)
    assert httpx.get(url("/readyz"), timeout=10).status_code == 200
    limited.processes["gateway"].send_signal(signal.SIGTERM)
    probes: list[httpx.Response] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (probes and probes[-1].status_code == 503):
        probes.append(httpx.get(url("/readyz"), timeout=10))
    assert probes[-1].status_code == 503 and probes[-1].json() == {"status": "draining"}
    assert httpx.get(url("/healthz"), timeout=10).status_code == 200
    late = httpx.post(url("/v1/audio/speech"), json=speech_body(), timeout=10)
    assert late.status_code == 503 and late.json()["error"]["code"] == "draining"
    assert listener.is_alive(), "the stream ended before the drain could be seen"
    listener.join(120)
    assert not failure, failure
    done = events[-1]
    assert done["type"] == "speech.audio.done", done
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    assert done["summary"]["samples"] == len(audio) // 2 > 0
    assert done["usage"]["output_tokens"] > 0
    assert limited.processes["gateway"].wait(60) == 0


def test_an_unreachable_vocoder_makes_speech_503(stack: LocalStack, tiny_pack: Pack, tmp_path: Path) -> None:
    env = {"VOXSERVE_GATEWAY_VOCODER_ADDRESS": f"127.0.0.1:{free_port()}"}
    local = own_services(stack, tiny_pack, tmp_path, ("gateway",), env)
    try:
        with sdk(local, "unused") as client, pytest.raises(openai.InternalServerError) as info:
            client.audio.speech.create(model="tts-1", voice="default", input=SHORT_TEXT)
        assert info.value.status_code == 503
        error = info.value.response.json()["error"]
        assert error["type"] == "server_error" and "vocoder" in error["message"]
    finally:
        local.stop()
