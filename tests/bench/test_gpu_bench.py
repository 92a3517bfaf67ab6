"""The one-command device benchmark, rehearsed on CPU: `scripts/gpu-bench.sh --device cpu --quick`
through `bench.gpu_bench`, its vocoder-only packs, the tier's clients of every codec, and the
time budget."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from bench.gpu_bench import main as gpu_bench_main
from bench.tier_codec import TIER_CODECS, tier_codec
from bench.vocoder_packs import VOCODER_PACKS, write_vocoder_pack
from bench.vocoder_tier import SYSTEMS
from voxserve.vocoder.codecs.registry import build_codec
from voxserve.vocoder.servicer import validate_token_ids, voice_conditioning

REPO = Path(__file__).resolve().parents[2]
CODEC_OF_PACK = {"bicodec": "bicodec", "s3gen": "s3gen", "s3gen-turbo": "s3gen", "snac": "snac"}


def rehearse(out: Path, *extra: str) -> dict[str, Any]:
    """The script, as the GPU machine runs it, on this CPU in the current environment."""
    command = [
        "bash",
        "scripts/gpu-bench.sh",
        "--device",
        "cpu",
        "--quick",
        "--no-install",
        "--out",
        str(out),
    ]
    env = dict(os.environ, PYTHON=sys.executable)
    done = subprocess.run(
        [*command, "--", *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=280
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary: dict[str, Any] = json.loads((out / "gpu-bench.json").read_text())
    return summary


def check_outputs(out: Path, summary: dict[str, Any], codecs: list[str], systems: list[str]) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["gpu-bench.json", "gpu-bench.md", "gpu-bench.png", "gpu-bench-logs.tar.gz"]
    ), "four files, within what a device run brings back"
    assert summary["device"]["device"] == "cpu" and summary["size"] == "tiny"
    assert list(summary["codecs"]) == codecs
    for codec in codecs:
        entry = summary["codecs"][codec]
        assert list(entry["systems"]) == systems, codec
        for name, system in entry["systems"].items():
            first = system["levels"][0]
            assert first["concurrency"] == 1 and first["errors"] == 0, (codec, name)
            assert first["ttfa_p50_ms"] is not None and first["audio_seconds_per_wall_second"] > 0, (
                codec,
                name,
            )
            assert system["sustained_streams"] in (0, 1, 2)
        run = summary["runs"][codec]
        assert run["pack"]["codec"] == CODEC_OF_PACK[codec] and run["settings"]["device"] == "cpu"
        assert f"## {codec}" in (out / "gpu-bench.md").read_text()
    assert (out / "gpu-bench.png").read_bytes()[:4] == b"\x89PNG"
    with tarfile.open(out / "gpu-bench-logs.tar.gz") as logs:
        names = logs.getnames()
    for codec in codecs:
        for name in systems:
            assert f"logs/vocoder-tier-{codec}-{name}.log" in names


def test_the_script_runs_snac_and_s3gen_turbo_end_to_end(tmp_path: Path) -> None:
    # The codecs bench vocoder never served before, each with the batching service and the
    # baseline loop (voxserve-bs1 is the same service with one setting changed).
    out = tmp_path / "out"
    summary = rehearse(out, "--codecs", "snac,s3gen-turbo", "--systems", "voxserve,baseline")
    check_outputs(out, summary, ["snac", "s3gen-turbo"], ["voxserve", "baseline"])


@pytest.mark.slow
def test_the_rehearsal_runs_every_codec_and_system(tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = rehearse(out)
    check_outputs(out, summary, list(VOCODER_PACKS), list(SYSTEMS))


def test_a_spent_budget_skips_the_codecs_not_started(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert gpu_bench_main(["--device", "cpu", "--quick", "--out", str(out), "--budget-seconds", "-1"]) == 0
    summary = json.loads((out / "gpu-bench.json").read_text())
    assert all("time budget spent" in entry["skipped"] for entry in summary["codecs"].values())
    assert list(summary["codecs"]) == list(VOCODER_PACKS)
    assert "skipped: time budget spent" in (out / "gpu-bench.md").read_text()


def test_unknown_codecs_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        gpu_bench_main(["--device", "cpu", "--out", str(tmp_path), "--codecs", "bicodec,mimi"])
    assert "unknown codecs mimi" in capsys.readouterr().err


@pytest.mark.parametrize("name", VOCODER_PACKS)
def test_vocoder_packs_load_and_take_the_tier_clients_streams(name: str, tmp_path: Path) -> None:
    pack = write_vocoder_pack(tmp_path / name, name, "tiny")
    assert pack.family.codec == CODEC_OF_PACK[name]
    codec = build_codec(pack)
    if name.startswith("s3gen"):
        assert codec.model.config.flow.meanflow is (name == "s3gen-turbo")  # type: ignore[attr-defined]
    client = tier_codec(pack.family.codec)
    assert client.tokens_per_second == codec.sample_rate / codec.samples_per_token
    assert client.codes_per_token == codec.codes_per_token
    rng = random.Random(3)
    # The start message's voice is one the codec takes, and its ids are in its vocabulary.
    codec.condition(voice_conditioning(client.start(rng, seed=3)))
    ids = client.random_ids(rng, 20)
    assert len(ids) == 20 * codec.codes_per_token
    validate_token_ids(ids, codec.token_vocab_size)


def test_tier_clients_feed_five_seconds_in_frames_of_about_100_ms() -> None:
    assert {name: c.tokens_for(5.0) for name, c in TIER_CODECS.items()} == {
        "bicodec": 250,
        "s3gen": 125,
        "snac": 59,
    }
    assert {name: c.frame_tokens() for name, c in TIER_CODECS.items()} == {
        "bicodec": 5,
        "s3gen": 3,
        "snac": 2,
    }
    with pytest.raises(ValueError, match="no tier client"):
        tier_codec("mimi")
