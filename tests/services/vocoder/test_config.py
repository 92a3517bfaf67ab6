"""The vocoder's settings check themselves when loaded, naming the variable."""

from __future__ import annotations

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
