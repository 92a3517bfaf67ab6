"""`voxserve voices` without a gateway: its arguments, how it reads the reference audio, the
CreateVoice request stream it sends, and an unreachable gateway."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from voxserve.cli import main, parser
from voxserve.cli.voices import read_audio
from voxserve.client import voice_requests
from voxserve.v1 import speech_pb2

NOWHERE = ("--address", "127.0.0.1:1")  # nothing listens: a command that calls would fail


def voxserve(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_a_raw_file_needs_a_rate_and_a_file_takes_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ref.raw").write_bytes(b"\x00\x01" * 100)
    (tmp_path / "ref.wav").write_bytes(b"RIFF")
    status, out, err = voxserve(capsys, "voices", "add", "x", str(tmp_path / "ref.raw"), *NOWHERE)
    assert (status, out) == (2, "")
    assert err == f"error: {tmp_path / 'ref.raw'} is raw PCM16: give its rate with --sample-rate\n"
    wav = str(tmp_path / "ref.wav")
    status, _, err = voxserve(capsys, "voices", "add", "x", wav, "--sample-rate", "16000", *NOWHERE)
    assert status == 2
    assert err == f"error: --sample-rate is for raw PCM16 (.pcm, .raw or '-'); {wav} carries its own\n"


def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = voxserve(capsys, "voices", "add", "x", str(tmp_path / "none.wav"), *NOWHERE)
    assert status == 2 and err.startswith("error: ") and "none.wav" in err


def test_read_audio_takes_a_file_or_standard_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ref.PCM").write_bytes(b"\x01\x02")
    (tmp_path / "ref.ogg").write_bytes(b"OggS")
    assert read_audio(str(tmp_path / "ref.PCM"), 8000) == (b"\x01\x02", 8000)
    assert read_audio(str(tmp_path / "ref.ogg"), 0) == (b"OggS", 0)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xff\xfb\x90")))
    assert read_audio("-", 0) == (b"\xff\xfb\x90", 0)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x00\x10")))
    assert read_audio("-", 16000) == (b"\x00\x10", 16000)


def test_an_unreachable_gateway_is_an_error_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    for action in ((), ("show", "x"), ("rm", "x")):
        status, out, err = voxserve(capsys, "voices", *NOWHERE, *action)
        assert (status, out) == (1, "")
        assert err.startswith("error: UNAVAILABLE: ")


def test_the_request_stream_is_the_header_then_the_audio_in_chunks() -> None:
    header = speech_pb2.VoiceHeader(voice_id="x", format=speech_pb2.REFERENCE_FORMAT_PCM16, sample_rate=8000)
    data = bytes(range(256)) * 10
    requests = list(voice_requests(header, data, chunk_bytes=1000))
    assert requests[0].WhichOneof("message") == "header" and requests[0].header == header
    assert [r.WhichOneof("message") for r in requests[1:]] == ["audio"] * 3
    assert [len(r.audio) for r in requests[1:]] == [1000, 1000, 560]
    assert b"".join(r.audio for r in requests[1:]) == data
    assert [r.WhichOneof("message") for r in voice_requests(header, b"")] == ["header"]
    with pytest.raises(ValueError, match="chunk_bytes"):
        list(voice_requests(header, data, chunk_bytes=0))


def test_options_given_before_the_action_are_kept() -> None:
    args = parser().parse_args(["voices", "--address", "h:1", "--api-key", "k", "rm", "x"])
    assert (args.address, args.api_key, args.voice_id) == ("h:1", "k", "x")
    args = parser().parse_args(["voices", "--address", "h:1", "rm", "x", "--address", "h:2"])
    assert args.address == "h:2"
    args = parser().parse_args(["voices", "show", "x"])
    assert (args.address, args.api_key, args.ca, args.json) == (None, None, None, False)
    args = parser().parse_args(["voices"])
    assert (args.action, args.address) == (None, None)


def test_add_takes_every_header_field() -> None:
    argv = ["voices", "add", "v1", "-", "--transcript", "Hi.", "--name", "N", "--description", "D"]
    args = parser().parse_args([*argv, "--consent", "C", "--family", "spark", "--sample-rate", "22050"])
    fields = (args.voice_id, args.audio, args.transcript, args.name, args.description, args.consent)
    assert fields == ("v1", "-", "Hi.", "N", "D", "C")
    assert (args.family, args.sample_rate) == ("spark", 22050)
    assert parser().parse_args(["voices", "add", "v1", "f.wav"]).transcript is None
