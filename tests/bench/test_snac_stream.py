"""The SNAC streaming benchmark's measures, on a tiny SNAC: what each streamer emits and how close."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.snac_stream import measure, run_snac_stream
from voxserve.random_packs.tiny_snac import write_snac
from voxserve.vocoder.codecs.snac.codec import SnacCodec
from voxserve.vocoder.stream import ChunkPolicy


@pytest.fixture(scope="module")
def snac_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("snac-pack")
    write_snac(root, seed=4)
    return root


def test_voxserve_emits_every_frame_and_the_reference_loses_three(snac_dir: Path) -> None:
    codec = SnacCodec.from_pack(snac_dir)
    figures = measure(codec, 20, ChunkPolicy(2, 12, 3, 3))
    assert figures.utterance_samples == figures.voxserve_samples == 20 * 2048
    assert figures.reference_samples == (20 - 3) * 2048, "the first frame and the last two are lost"
    assert figures.voxserve_max_abs_diff <= 1e-5
    assert figures.reference_max_abs_diff > 10 * max(figures.voxserve_max_abs_diff, 1e-6)
    assert figures.voxserve_first_audio_frames == 5 and figures.reference_first_audio_frames == 4


def test_the_run_writes_its_figures(snac_dir: Path, tmp_path: Path) -> None:
    result = run_snac_stream(snac_dir, tmp_path, durations=(1.0,))
    assert Path(str(result["written"])).is_file()
    figures = result["figures"]
    assert isinstance(figures, dict) and figures["1s"]["frames"] == 12
