"""The vocoder's settings check themselves when loaded, naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from voxserve.common.config import ConfigError
from voxserve.vocoder import config as vocoder_config


def test_the_dtype_names_a_torch_dtype() -> None:
    assert vocoder_config.load().torch_dtype == torch.float32
    assert vocoder_config.load(dtype="bfloat16").torch_dtype == torch.bfloat16
    with pytest.raises(ConfigError, match=r"VOXSERVE_VOCODER_DTYPE='int8': expected one of float32, float16"):
        vocoder_config.load(dtype="int8")


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("first_chunk_tokens", -1, "VOXSERVE_VOCODER_FIRST_CHUNK_TOKENS=-1: must be >= 0"),
        ("context_tokens", -2, "VOXSERVE_VOCODER_CONTEXT_TOKENS=-2: must be >= 0"),
        ("max_streams", 0, "VOXSERVE_VOCODER_MAX_STREAMS=0: must be >= 1"),
        ("max_batch_size", 0, "VOXSERVE_VOCODER_MAX_BATCH_SIZE=0: must be >= 1"),
        ("context_tolerance", 0.0, "VOXSERVE_VOCODER_CONTEXT_TOLERANCE=0.0: must be > 0"),
        ("port", 70000, "VOXSERVE_VOCODER_PORT=70000: a port is 0..65535"),
    ],
)
def test_a_setting_out_of_range_is_refused(setting: str, value: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        vocoder_config.load(**{setting: value})


def test_the_first_chunk_may_not_exceed_the_largest() -> None:
    with pytest.raises(
        ConfigError, match="FIRST_CHUNK_TOKENS=20: must be <= VOXSERVE_VOCODER_MAX_CHUNK_TOKENS=10"
    ):
        vocoder_config.load(first_chunk_tokens=20, max_chunk_tokens=10)
    # Either left 0 takes the family's default; the chunk policy checks the pair then.
    assert vocoder_config.load(first_chunk_tokens=20).first_chunk_tokens == 20


def test_cuda_switches_read_from_the_environment() -> None:
    from voxserve.common.config import load_config

    defaults = vocoder_config.load()
    assert defaults.cuda_graphs is True and defaults.tf32 is False
    environ = {"VOXSERVE_VOCODER_CUDA_GRAPHS": "false", "VOXSERVE_VOCODER_TF32": "true"}
    loaded = load_config(vocoder_config.VocoderConfig, vocoder_config.PREFIX, environ=environ)
    assert loaded.cuda_graphs is False and loaded.tf32 is True


def test_decode_lanes_follow_the_cores_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vocoder_config, "available_cores", lambda: 8)
    assert vocoder_config.load().decode_lanes == 8, "one intra-op thread each: one lane per core"
    assert vocoder_config.load(torch_threads=2).decode_lanes == 4
    assert vocoder_config.load(torch_threads=0).decode_lanes == 1, "torch's threads take every core"
    assert vocoder_config.load(cpu_decode_lanes=3).decode_lanes == 3
    with pytest.raises(ConfigError, match="VOXSERVE_VOCODER_CPU_DECODE_LANES=-1: must be >= 0"):
        vocoder_config.load(cpu_decode_lanes=-1)


@pytest.mark.parametrize(
    ("cpu_max", "cores"), [("max 100000\n", 64), ("250000 100000\n", 2), ("50000 100000", 1)]
)
def test_a_cgroup_quota_caps_the_available_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpu_max: str, cores: int
) -> None:
    monkeypatch.setattr(vocoder_config.os, "sched_getaffinity", lambda pid: set(range(64)))
    limit = tmp_path / "cpu.max"
    limit.write_text(cpu_max)
    assert vocoder_config.available_cores(limit) == cores
    assert vocoder_config.available_cores(tmp_path / "absent") == 64
