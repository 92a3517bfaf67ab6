"""How the generator sets vLLM up: executor and CPU threads."""

from __future__ import annotations

import os

import pytest

from voxserve.common.config import ConfigError
from voxserve.generator import app
from voxserve.generator import config as generator_config
from voxserve.generator.app import prepare_vllm_environment


@pytest.mark.parametrize(
    ("executor", "on_cpu", "backend"),
    [("auto", True, "uni"), ("auto", False, "mp"), ("inproc", False, "uni"), ("mp", True, "mp")],
)
def test_executor_backend(executor: str, on_cpu: bool, backend: str) -> None:
    assert generator_config.load(executor=executor).executor_backend(on_cpu) == backend


def test_an_unknown_executor_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="VOXSERVE_GENERATOR_EXECUTOR='ray'"):
        generator_config.load(executor="ray")


def test_the_config_derives_vllms_variables() -> None:
    config = generator_config.load(cpu_threads=3, kv_cache_gib=2)
    assert config.vllm_defaults["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert config.vllm_defaults["VLLM_LOGGING_CONFIG_PATH"].endswith("vllm_logging.json")
    cpu = config.vllm_environment(on_cpu=True)
    assert (cpu.on_cpu, cpu.backend) == (True, "uni")
    assert cpu.settings == {
        "OMP_NUM_THREADS": "3",
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    }
    assert generator_config.load(cpu_threads=0).vllm_environment(on_cpu=True).settings == {
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0"
    }
    assert config.vllm_environment(on_cpu=False).settings == {}


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private copy of the environment for the code under test to write into."""
    copy = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "VLLM_"))}
    monkeypatch.setattr(os, "environ", copy)
    return copy


def test_cpu_hosts_get_the_in_process_model_and_its_thread_count(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]
) -> None:
    monkeypatch.setattr(app, "_on_cpu", lambda: True)
    assert prepare_vllm_environment(generator_config.load(cpu_threads=3)).backend == "uni"
    assert environ["OMP_NUM_THREADS"] == "3"
    assert environ["VLLM_CPU_OMP_THREADS_BIND"] == "nobind"
    assert environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"


def test_gpu_hosts_keep_vllms_defaults(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]) -> None:
    monkeypatch.setattr(app, "_on_cpu", lambda: False)
    assert prepare_vllm_environment(generator_config.load()).backend == "mp"
    assert "OMP_NUM_THREADS" not in environ and "VLLM_ENABLE_V1_MULTIPROCESSING" not in environ
    assert environ["VLLM_CPU_KVCACHE_SPACE"] == "1"


def test_an_operators_kv_cache_setting_wins(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]) -> None:
    monkeypatch.setattr(app, "_on_cpu", lambda: True)
    environ["VLLM_CPU_KVCACHE_SPACE"] = "8"
    environ["OMP_NUM_THREADS"] = "16"
    prepare_vllm_environment(generator_config.load(kv_cache_gib=2))
    assert environ["VLLM_CPU_KVCACHE_SPACE"] == "8" and environ["OMP_NUM_THREADS"] == "1"
