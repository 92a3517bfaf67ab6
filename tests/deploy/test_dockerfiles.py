"""The Dockerfiles pass hadolint (no Docker engine here: they are linted, not built), and each
image installs only its own service's distributions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.tools import BIN, DOCKERFILES, run


def test_there_is_an_image_per_service_and_one_for_the_cpu_stack() -> None:
    assert [d.name for d in DOCKERFILES] == [
        "cpu.Dockerfile",
        "gateway.Dockerfile",
        "generator.Dockerfile",
        "vocoder.Dockerfile",
    ]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = run(BIN / "hadolint", "--no-color", dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python\nRUN pip install grpcio\nUSER root\n")
    result = run(BIN / "hadolint", "--no-color", bad)
    assert result.returncode != 0 and "DL3006" in result.stdout  # an untagged base image


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_non_root_with_a_grpc_health_check(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert re.search(r"^USER 10001$", text, re.M)
    assert re.search(r'CMD \["voxserve-health", "--address", "127\.0\.0\.1:\d+"\]', text)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_each_image_builds_wheels_of_its_own_members_only(dockerfile: Path) -> None:
    """A service image installs its distribution and the shared one: never the workspace (bench,
    dev tools) and, but for the CPU all-in-one image, never the tooling (CLI, pack writers)."""
    text = dockerfile.read_text()
    wheels = re.search(r"--wheel-dir /wheels (.+)$", text, re.M)
    assert wheels is not None
    members = wheels.group(1).split()
    expected = {
        "gateway.Dockerfile": ["./services/shared", "./gateway"],
        "generator.Dockerfile": ["./services/shared", "./services/generator"],
        "vocoder.Dockerfile": ["./services/shared", "./services/vocoder"],
        "cpu.Dockerfile": [
            "./services/shared",
            "./services/generator",
            "./services/vocoder",
            "./gateway",
            "./services/tooling",
        ],
    }[dockerfile.name]
    assert members == expected
    assert "bench" not in text and not re.search(r"^COPY pyproject\.toml", text, re.M)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_running_the_gateway_expose_its_http_port(dockerfile: Path) -> None:
    exposed = re.search(r"^EXPOSE (.*)$", dockerfile.read_text(), re.M)
    assert exposed is not None
    runs_gateway = dockerfile.name in ("gateway.Dockerfile", "cpu.Dockerfile")
    assert ("8080" in exposed.group(1).split()) == runs_gateway
