"""`voxserve voices` (list, add, show, rm) and the client's voice calls, against a real gateway
with a real voice store and a real vocoder encoding the tiny pack's references.

Each command runs as its own process (the servers, on the test's event loop, log to this one's
standard output); the blocking client runs in a worker thread."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.gateway.enrolment_harness import Gateway, gateway_server, voiced, wav_bytes
from voxserve.client import ClientSecurity, create_voice, delete_voice, get_voice, list_voices

TRANSCRIPT = "This is how I sound when I read aloud."
KEY_A, KEY_B = "key-a-0123456789", "key-b-0123456789"


async def voxserve(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    """Runs `voxserve ARGV...`; returns its exit status, standard output and standard error."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voxserve.cli",
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_add_list_show_and_rm_a_voice(gateway: Gateway, reference: bytes, tmp_path: Path) -> None:
    path = tmp_path / "alice.wav"
    path.write_bytes(reference)
    address = ("--address", gateway.address)
    status, out, err = await voxserve(
        *("voices", "add", "alice", str(path), "--transcript", TRANSCRIPT, "--name", "Alice"),
        *("--description", "narrator", "--consent", "Alice agreed on 2026-12-01", *address),
    )
    assert (status, err) == (0, "")
    assert out == "created voice alice (spark, 16000 Hz, from 3.00 s of reference audio)\n"

    status, out, _ = await voxserve("voices", *address)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["ID", "KIND"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["default", "built-in"],
        ["female", "built-in"],
        ["male", "built-in"],
        ["alice", "stored"],
    ]

    status, out, _ = await voxserve("voices", "--json", *address)
    rows = json.loads(out)
    assert [(row["id"], row["stored"]) for row in rows][-1] == ("alice", True)
    assert (rows[-1]["display_name"], rows[-1]["transcript"]) == ("Alice", TRANSCRIPT)
    assert "display_name" not in rows[0]

    status, out, _ = await voxserve("voices", "show", "alice", *address)
    assert status == 0
    shown = dict(line.split(None, 1) for line in out.splitlines())
    assert shown["id"] == "alice" and shown["stored"] == "yes" and shown["family"] == "spark"
    assert shown["transcript"] == TRANSCRIPT and shown["consent"] == "Alice agreed on 2026-12-01"
    assert shown["display_name"] == "Alice" and shown["description"] == "narrator"
    assert shown["created_unix_seconds"].endswith("+00:00")
    assert float(shown["reference_seconds"]) == pytest.approx(3.0, abs=1e-3)
    status, out, _ = await voxserve("voices", "show", "alice", "--json", *address)
    assert json.loads(out)["consent"] == "Alice agreed on 2026-12-01"

    status, out, err = await voxserve("voices", "rm", "alice", *address)
    assert (status, out, err) == (0, "deleted voice alice\n", "")
    status, out, err = await voxserve("voices", "show", "alice", *address)
    assert status == 1 and out == ""
    assert err.startswith("error: NOT_FOUND: ") and "alice" in err


async def test_the_address_may_come_before_the_action(
    gateway: Gateway, reference: bytes, tmp_path: Path
) -> None:
    (tmp_path / "bob.flac").write_bytes(reference)  # the bytes say WAV; the name does not matter
    status, out, _ = await voxserve(
        "voices", "--address", gateway.address, "add", "bob", str(tmp_path / "bob.flac")
    )
    assert status == 0 and out.startswith("created voice bob ")


async def test_add_reads_standard_input(gateway: Gateway, reference: bytes) -> None:
    status, out, err = await voxserve(
        "voices", "add", "piped", "-", "--address", gateway.address, stdin=reference
    )
    assert (status, err) == (0, "")
    assert "from 3.00 s" in out


async def test_add_raw_pcm16_with_its_rate(gateway: Gateway, tmp_path: Path) -> None:
    pcm = np.round(voiced(2.5, rate=24000) * 32767).astype("<i2").tobytes()
    (tmp_path / "ref.pcm").write_bytes(pcm)
    address = ("--address", gateway.address)
    status, out, _ = await voxserve(
        "voices", "add", "raw", str(tmp_path / "ref.pcm"), "--sample-rate", "24000", *address
    )
    assert status == 0 and "from 2.50 s" in out
    status, out, _ = await voxserve(
        "voices", "add", "rawpipe", "-", "--sample-rate", "16000", *address, stdin=pcm
    )
    assert status == 0 and "from 3.75 s" in out  # the same bytes read at another rate


async def test_server_refusals_print_the_status_and_exit_non_zero(
    gateway: Gateway, reference: bytes, tmp_path: Path
) -> None:
    address = ("--address", gateway.address)
    (tmp_path / "notes.txt").write_text("These are notes, not a recording.\n" * 40)
    status, out, err = await voxserve("voices", "add", "notes", str(tmp_path / "notes.txt"), *address)
    assert (status, out) == (1, "")
    assert (
        err.startswith("error: INVALID_ARGUMENT: audio ") and "WAV, FLAC, Ogg (Opus or Vorbis) or MP3" in err
    )

    (tmp_path / "short.wav").write_bytes(wav_bytes(voiced(1.0)))
    status, _, err = await voxserve("voices", "add", "short", str(tmp_path / "short.wav"), *address)
    assert status == 1 and err == "error: INVALID_ARGUMENT: audio lasts 1.00 s; allowed 2 .. 60 s\n"

    (tmp_path / "carol.wav").write_bytes(reference)
    assert (await voxserve("voices", "add", "carol", str(tmp_path / "carol.wav"), *address))[0] == 0
    status, _, err = await voxserve("voices", "add", "carol", str(tmp_path / "carol.wav"), *address)
    assert status == 1 and err.startswith("error: ALREADY_EXISTS: ")

    status, _, err = await voxserve("voices", "rm", "nobody", *address)
    assert status == 1 and err.startswith("error: NOT_FOUND: ")
    status, _, err = await voxserve("voices", "rm", "default", *address)
    assert status == 1 and err.startswith("error: FAILED_PRECONDITION: ")


async def test_the_api_key_scopes_what_the_commands_see(
    tmp_path: Path, vocoder: str, reference: bytes
) -> None:
    (tmp_path / "dana.wav").write_bytes(reference)
    async with gateway_server(tmp_path / "v.sqlite3", [vocoder], keys=[KEY_A, KEY_B]) as gateway:
        address = ("--address", gateway.address)
        status, _, _ = await voxserve(
            "voices", "add", "dana", str(tmp_path / "dana.wav"), "--api-key", KEY_A, *address
        )
        assert status == 0
        _, out, _ = await voxserve("voices", "--json", "--api-key", KEY_A, *address)
        assert [row["id"] for row in json.loads(out) if row["stored"]] == ["dana"]
        _, out, _ = await voxserve("voices", "--json", "--api-key", KEY_B, *address)
        assert [row["id"] for row in json.loads(out) if row["stored"]] == []
        status, _, err = await voxserve("voices", "show", "dana", "--api-key", KEY_B, *address)
        assert status == 1 and err.startswith("error: NOT_FOUND: ")
        status, _, err = await voxserve("voices", "show", "dana", *address)
        assert status == 1 and err.startswith("error: UNAUTHENTICATED: ")
        status, _, _ = await voxserve("voices", "--api-key", KEY_A, *address, "rm", "dana")
        assert status == 0


async def test_the_client_round_trip(gateway: Gateway, reference: bytes, tmp_path: Path) -> None:
    path = tmp_path / "erin.wav"
    path.write_bytes(reference)
    voice = await asyncio.to_thread(
        create_voice, gateway.address, "erin", path, transcript=TRANSCRIPT, consent="yes", chunk_bytes=1000
    )
    assert (voice.id, voice.stored, voice.transcript, voice.consent) == ("erin", True, TRANSCRIPT, "yes")
    assigned = await asyncio.to_thread(create_voice, gateway.address, "", reference, display_name="Someone")
    assert assigned.id.startswith("voice-") and assigned.display_name == "Someone"
    assert assigned.transcript == ""
    assert await asyncio.to_thread(get_voice, gateway.address, "erin") == voice
    listed = await asyncio.to_thread(list_voices, gateway.address)
    assert [v.id for v in listed if v.stored] == ["erin", assigned.id]
    await asyncio.to_thread(delete_voice, gateway.address, "erin")
    listed = await asyncio.to_thread(list_voices, gateway.address, security=ClientSecurity())
    assert [v.id for v in listed if v.stored] == [assigned.id]
