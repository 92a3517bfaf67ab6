"""The playground page in a real browser: Debian's Chromium, driven by Playwright, against the stack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from voxserve.stack import LocalStack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Headless Chromium has no user to unlock audio; the click below is a gesture anyway.
    "--autoplay-policy=no-user-gesture-required",
]
# Long enough for many chunks, short enough for one segment the session stack's vocoder accepts:
# the gateway lets a segment run 0.12 s per character, and the vocoder holds 600 tokens (12 s).
SENTENCE = "Speech plays while it is generated. Each chunk is queued after the one before it."
SPEECH_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is part of the test environment (apt-get install chromium)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, stack: LocalStack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 900, "height": 900})
    opened = context.new_page()
    opened.goto(stack.ports.http_url("/"))
    opened.wait_for_function("document.querySelectorAll('#voice option').length > 0")
    yield opened
    context.close()


def playground_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("() => ({...window.playground})")
    return state


def test_playground_plays_speech_while_it_is_generated(page: Page) -> None:
    page.fill("#text", SENTENCE)
    page.click("#speak")
    page.wait_for_function(
        "() => ['done', 'error'].includes(window.playground.state)", timeout=SPEECH_TIMEOUT_MS
    )
    state = playground_state(page)
    assert state["state"] == "done", state["lastError"]
    assert state["lastError"] is None
    assert state["bytesReceived"] > 0
    assert state["bytesReceived"] % 2 == 0
    assert state["chunksScheduled"] > 1
    assert state["firstAudioMs"] > 0
    # Playback began before the stream ended: the page does not wait for the whole utterance.
    assert state["playbackStartedAt"] < state["synthesisDoneAt"]
    # The page rounds as JavaScript does (halves up), not as Python's round (halves to even).
    shown = page.evaluate("`${Math.round(window.playground.firstAudioMs)} ms`")
    assert page.text_content("#first-audio") == shown and shown.removesuffix(" ms").isdigit()

    screenshots = os.environ.get("VOXSERVE_SCREENSHOT_DIR")
    if screenshots:
        Path(screenshots).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(screenshots) / "playground.png"), full_page=True)


def test_playground_sends_the_api_key_and_lists_the_stack_voices(page: Page, stack: LocalStack) -> None:
    listed = page.eval_on_selector_all("#voice option", "options => options.map(o => o.value)")
    assert listed == playground_state(page)["voices"]
    assert listed, "the stack lists at least one voice"

    page.fill("#api-key", "playground-key")
    with page.expect_request("**/v1/audio/voices") as request:
        page.dispatch_event("#api-key", "change")
    assert request.value.headers["authorization"] == "Bearer playground-key"


def test_playground_shows_the_api_error_of_a_voice_upload(page: Page, tmp_path: Path) -> None:
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("not a recording")
    page.fill("#voice-id", "playground-voice")
    page.set_input_files("#voice-file", str(not_audio))
    page.check("#consent")
    with page.expect_response("**/v1/audio/voices") as response:
        page.click("#create-voice")
    assert response.value.status >= 400
    message = response.value.json()["error"]["message"]
    page.wait_for_function("() => document.querySelector('#voice-status').classList.contains('error')")
    assert page.text_content("#voice-status") == message
