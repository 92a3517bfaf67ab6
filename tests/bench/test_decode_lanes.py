"""`bench lanes` on tiny codecs: the figures it writes for each codec and row count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main


def test_the_bench_times_two_forwards_on_one_lane_against_two_lanes_for_each_row_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["lanes", "--codecs", "bicodec,snac", "--rows", "1,2", "--lanes", "2", "--repeats", "1"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    [written] = tmp_path.glob("decode-lanes-*.json")
    assert f"written: {written}" in capsys.readouterr().out
    result = json.loads(written.read_text())
    assert result["settings"]["lanes"] == 2 and result["machine"]["cpu_count"] >= 1
    assert set(result["codecs"]) == {"bicodec", "snac"}
    for name, figures in result["codecs"].items():
        assert [f["rows"] for f in figures] == [1, 2], name
        for f in figures:
            assert f["one_lane_ms"] > 0 and f["lanes_ms"] > 0, name
            assert f["speedup"] == pytest.approx(f["one_lane_ms"] / f["lanes_ms"])
            assert f["window_tokens"] > 10, f"{name}: the longest window, context included"
            assert f["forwards"] == 2, "one forward per lane"


def test_one_lane_has_nothing_to_compare(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="lanes must be >= 2"):
        main(["lanes", "--codecs", "bicodec", "--lanes", "1", "--out", str(tmp_path)])
