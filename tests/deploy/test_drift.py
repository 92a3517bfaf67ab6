"""The deploy files and the services agree: every VOXSERVE_* variable they set is a real setting,
ports and health checks point where each service listens, and the time containers get to stop
is longer than the services' drain."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.deploy.tools import DOCKERFILES, OVERLAYS, compose, container, env_of, find, manifests
from voxserve.cli import setting_groups
from voxserve.common.config import describe

SERVICES = ("generator", "vocoder", "gateway")
SETTINGS = {
    name: default for _, cls, prefix in setting_groups() for name, default, _ in describe(cls, prefix)
}
COMPOSE_NAMES = {
    "gpu": {"generator": "generator", "vocoder": "vocoder", "gateway": "gateway"},
    "cpu": {"generator": "generator-cpu", "vocoder": "vocoder-cpu", "gateway": "gateway"},
}


def setting(env: dict[str, str], service: str, name: str) -> str:
    """What a service runs with: the variable where it is set, else the setting's default."""
    variable = f"VOXSERVE_{service.upper()}_{name}"
    return env.get(variable) or SETTINGS[variable]


def served_ports(env: dict[str, str], service: str) -> dict[str, str]:
    """Every port a service listens on, by the name the manifests give it."""
    ports = {"grpc": setting(env, service, "PORT"), "metrics": setting(env, service, "METRICS_PORT")}
    if service == "gateway":
        ports["http"] = setting(env, service, "HTTP_PORT")
    return ports


def compose_services(profile: str) -> dict[str, Any]:
    result = compose("--profile", profile, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout)["services"])


def dockerfile_env(text: str) -> dict[str, str]:
    block = re.search(r"^ENV (.*?)(?=^\S)", text, re.M | re.S)
    assert block is not None
    return dict(re.findall(r"(\w+)=(\S+)", block.group(1)))


def assert_known(names: set[str], where: str) -> None:
    unknown = sorted(n for n in names if n.startswith("VOXSERVE_") and n not in SETTINGS)
    assert not unknown, f"{where} sets variables no service reads: {unknown}"


@pytest.mark.parametrize("profile", sorted(COMPOSE_NAMES))
def test_compose_sets_real_settings_and_checks_the_ports_it_serves(profile: str) -> None:
    services = compose_services(profile)
    for service, name in COMPOSE_NAMES[profile].items():
        spec = services[name]
        env = {k: str(v) for k, v in spec.get("environment", {}).items()}
        assert_known(set(env), f"compose {name}")
        served = served_ports(env, service)
        assert spec["healthcheck"]["test"][-1] == f"127.0.0.1:{served['grpc']}"
        exposed = {str(p.get("target", p)) for p in spec.get("ports", [])} | set(
            map(str, spec.get("expose", []))
        )
        assert set(served.values()) <= exposed, f"{name} exposes {exposed}"
        grace = float(setting(env, service, "GRACE_SECONDS"))
        assert _seconds(spec["stop_grace_period"]) > grace, f"{name} is killed before its drain ends"
    gateway = {k: str(v) for k, v in services["gateway"]["environment"].items()}
    for upstream in ("generator", "vocoder"):
        upstream_env = {
            k: str(v) for k, v in services[COMPOSE_NAMES[profile][upstream]]["environment"].items()
        }
        address = setting(gateway, "gateway", f"{upstream.upper()}_ADDRESS")
        assert address.endswith(f":{setting(upstream_env, upstream, 'PORT')}")


def _seconds(duration: str) -> float:
    """Compose prints durations like "40s" or "1m30s"."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", duration)
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kubernetes_sets_real_settings_and_probes_the_ports_it_serves(overlay: str) -> None:
    docs = manifests(overlay)
    for service in SERVICES:
        spec = container(docs, service)
        env = env_of(spec)
        assert_known({e["name"] for e in spec.get("env", [])}, f"{overlay} {service}")
        ports = {p["name"]: str(p["containerPort"]) for p in spec["ports"]}
        assert ports == served_ports(env, service)
        pod = find(docs, "Deployment", f"voxserve-{service}")["spec"]["template"]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == ports["metrics"]
        grace = float(setting(env, service, "GRACE_SECONDS"))
        assert pod["spec"]["terminationGracePeriodSeconds"] > grace
        service_ports = {p["name"]: p for p in find(docs, "Service", f"voxserve-{service}")["spec"]["ports"]}
        for name in ("grpc", "http") if service == "gateway" else ("grpc",):
            assert str(service_ports[name]["port"]) == ports[name]
            assert service_ports[name]["targetPort"] == name
    gateway = env_of(container(docs, "gateway"))
    for upstream in ("generator", "vocoder"):
        upstream_port = setting(env_of(container(docs, upstream)), upstream, "PORT")
        address = gateway[f"VOXSERVE_GATEWAY_{upstream.upper()}_ADDRESS"]
        assert address == f"dns:///voxserve-{upstream}:{upstream_port}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfiles_set_real_settings_and_expose_and_check_their_ports(dockerfile: Any) -> None:
    text = dockerfile.read_text()
    env = dockerfile_env(text)
    assert_known(set(env), dockerfile.name)
    exposed = set(re.search(r"^EXPOSE (.*)$", text, re.M).group(1).split())  # type: ignore[union-attr]
    checked = re.search(r'"--address", "127\.0\.0\.1:(\d+)"', text).group(1)  # type: ignore[union-attr]
    service = dockerfile.name.removesuffix(".Dockerfile")
    served = [s for s in SERVICES if service in (s, "cpu")]
    for name in served:
        assert set(served_ports(env, name).values()) <= exposed, f"{dockerfile.name} exposes {exposed}"
    assert checked == setting(env, "gateway" if service == "cpu" else service, "PORT")
