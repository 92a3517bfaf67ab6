"""The Chatterbox enrolment benchmark runs on tiny sizes and reports every part."""

from __future__ import annotations

import json

import pytest
import torch

from bench.__main__ import main as bench_main

PARTS = ("resample_s", "voice_encoder_s", "tokenizer_s", "campplus_s", "mel_s")


def test_bench_command_times_each_part(capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    try:
        assert bench_main(["chatterbox-enrolment", "--size", "tiny", "--seconds", "3", "--repeats", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{") :])
    assert result["size"] == "tiny" and result["torch_threads"] == 1
    assert all(result[part] > 0 for part in PARTS)
    assert result["total_s"] == pytest.approx(sum(result[part] for part in PARTS), abs=1e-3)
