"""The vocoder-tier benchmark: paced token streams into each system's Vocoder service."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import main
from bench.report import read_json
from bench.vocoder_tier import TierSettings, running_vocoder
from voxserve.families.pack import Pack


def test_every_system_streams_every_sample_and_the_run_is_recorded(tiny_pack: Pack, tmp_path: Path) -> None:
    # `bench vocoder` at the smallest settings: each system's vocoder started by the harness.
    args = ["vocoder", "--pack", str(tiny_pack.root), "--concurrency", "1,3", "--streams-per-client", "1"]
    args += ["--tokens", "60", "--rate", "4", "--request-timeout", "60", "--out", str(tmp_path)]
    assert main(args) == 0
    [record] = list(tmp_path.glob("vocoder-tier-*.json"))
    run = read_json(record)
    assert list(run.systems) == ["voxserve", "voxserve-bs1", "baseline"]
    for name, levels in run.systems.items():
        assert [lv.concurrency for lv in levels] == [1, 3], name
        assert [lv.streams for lv in levels] == [1, 3], name
        assert all(lv.errors == 0 and lv.ttfa_p50 is not None for lv in levels), name
        # Every system returns all 60 tokens x 320 samples of every stream (the baseline in its
        # whole-buffer mode loses nothing either).
        assert levels[1].audio_seconds == pytest.approx(3 * 60 * 320 / 16000), name
    assert run.settings["benchmark"] == "vocoder-tier"
    assert record.with_suffix(".png").stat().st_size > 0
    assert "voxserve-bs1" in record.with_suffix(".md").read_text()


def test_an_unknown_system_is_refused(tiny_pack: Pack, tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="system 'nope' is unknown"),
        running_vocoder("nope", tiny_pack, TierSettings(), tmp_path),
    ):
        pass
