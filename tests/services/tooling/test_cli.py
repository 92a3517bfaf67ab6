"""The `voxserve` command line (pack, config) and model pack opening / caching."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from voxserve.cli import main
from voxserve.common.config import describe
from voxserve.families.pack import DEFAULT_PACK_SEED, Pack, default_pack_dir
from voxserve.gateway.config import PREFIX as GATEWAY_PREFIX
from voxserve.gateway.config import GatewayConfig
from voxserve.generator.config import PREFIX as GENERATOR_PREFIX
from voxserve.generator.config import GeneratorConfig
from voxserve.random_packs.writer import ensure_default_pack
from voxserve.vocoder.config import PREFIX as VOCODER_PREFIX
from voxserve.vocoder.config import VocoderConfig


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def packs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two packs written by `voxserve pack tiny DIR --seed 3`."""
    a = tmp_path_factory.mktemp("pack_a") / "pack"
    b = tmp_path_factory.mktemp("pack_b") / "pack"
    assert main(["pack", "tiny", str(a), "--seed", "3"]) == 0
    assert main(["pack", "tiny", str(b), "--seed", "3"]) == 0
    return a, b


def test_pack_tiny_writes_an_openable_pack(packs: tuple[Path, Path]) -> None:
    root, _ = packs
    pack = Pack.open(root)
    assert pack.root == root.resolve()
    assert pack.family.name == "spark"
    assert (pack.llm_dir / "config.json").is_file()
    assert (pack.llm_dir / "model.safetensors").is_file()
    assert (pack.bicodec_dir / "config.yaml").is_file()
    assert (pack.bicodec_dir / "model.safetensors").is_file()


def test_pack_tiny_is_deterministic_for_a_seed(packs: tuple[Path, Path]) -> None:
    a, b = (_files(p) for p in packs)
    assert a.keys() == b.keys()
    assert len(a) >= 4
    differ = [name for name in a if a[name] != b[name]]
    assert not differ


def test_pack_tiny_reports_where_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An existing directory is reused; the message names the pack root.
    assert main(["pack", "tiny", str(tmp_path), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "spark" in out
    assert str(tmp_path.resolve()) in out


def test_open_empty_dir_names_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        Pack.open(tmp_path)
    message = str(info.value)
    assert str(Path("LLM") / "config.json") in message
    assert str(Path("BiCodec") / "config.yaml") in message
    assert str(tmp_path.resolve()) in message


def test_open_names_only_the_missing_file(tmp_path: Path) -> None:
    (tmp_path / "LLM").mkdir()
    (tmp_path / "LLM" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError) as info:
        Pack.open(tmp_path)
    assert "config.yaml" in str(info.value)
    assert "config.json" not in str(info.value)


def test_family_requires_bicodec_dir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="BiCodec"):
        _ = Pack(tmp_path).family.name


def test_pack_command_requires_a_dir() -> None:
    with pytest.raises(SystemExit) as info:
        main(["pack", "tiny"])
    assert info.value.code == 2


def test_ensure_default_pack_writes_once_then_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXSERVE_HOME", str(tmp_path / "home"))
    target = default_pack_dir()
    assert target.is_relative_to(tmp_path / "home")
    assert str(DEFAULT_PACK_SEED) in target.name
    assert not target.exists()

    first = ensure_default_pack()
    assert first.root == target.resolve()
    assert first.family.name == "spark"
    weights = first.llm_dir / "model.safetensors"
    before = {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()}
    assert weights in before

    second = ensure_default_pack()
    assert second == first
    assert {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()} == before
    # Nothing but the pack itself is left next to it (no staging directories).
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_config_lists_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for cls, prefix in (
        (GatewayConfig, GATEWAY_PREFIX),
        (GeneratorConfig, GENERATOR_PREFIX),
        (VocoderConfig, VOCODER_PREFIX),
    ):
        listed = [line for line in lines if line.startswith(prefix)]
        assert len(listed) == len(dataclasses.fields(cls))
        for name, default, doc in describe(cls, prefix):
            assert f"{name}={default}\t# {doc}" in lines
    assert "VOXSERVE_GATEWAY_PORT=50051\t# gRPC port of the public Speech API" in lines
    assert any(line.startswith("VOXSERVE_HOME=") for line in lines)
    assert [line for line in lines if line.startswith("# ")] == [
        "# all",
        "# gateway",
        "# generator",
        "# vocoder",
    ]
