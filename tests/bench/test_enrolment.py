"""The enrolment benchmark runs end to end on a tiny pack and reports its figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.__main__ import main as bench_main
from bench.enrolment import reference_audio, run_enrolment


def test_reference_is_float32_mono_at_16k() -> None:
    audio = reference_audio(2.5)
    assert audio.dtype == "float32" and audio.shape == (40000,)
    assert 0.05 < float(abs(audio).max()) < 1.0


def test_run_writes_a_tiny_pack_and_times_both_paths(tmp_path: Path) -> None:
    result = run_enrolment("tiny", pack=tmp_path / "pack", seconds=2.0, repeats=1)
    assert (tmp_path / "pack" / "wav2vec2-large-xlsr-53" / "config.json").is_file()
    assert result["size"] == "tiny" and result["global_ids"] == 32
    assert result["semantic_ids"] == (32000 - 80) // 320
    assert all(result[key] > 0 for key in ("first_encode_s", "encode_s", "encode_global_ids_only_s"))


def test_bench_command_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    try:
        args = ["enrolment", "--size", "tiny", "--pack", str(tmp_path), "--seconds", "1", "--repeats", "1"]
        assert bench_main(args) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{") :])
    assert result["torch_threads"] == 1 and result["semantic_ids"] == 49
