"""docker-compose.yml is valid for Docker Compose itself in every profile, and wired so that
generators and vocoders scale on their own behind one DNS name each while the gateway alone
publishes its gRPC, metrics and HTTP ports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.tools import COMPOSE_FILE, ROOT, compose, compose_binary, run

POSTGRES_FILE = ROOT / "deploy" / "compose" / "postgres.yml"

PROFILES = {
    "gpu": {"generator", "vocoder", "gateway"},
    "cpu": {"generator-cpu", "vocoder-cpu", "gateway"},
}


def config(profile: str) -> dict[str, Any]:
    result = compose("--profile", profile, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_is_valid_and_runs_its_own_services(profile: str) -> None:
    result = compose("--profile", profile, "config", "-q")
    assert result.returncode == 0, result.stderr
    services = compose("--profile", profile, "config", "--services")
    assert set(services.stdout.split()) == PROFILES[profile]


def test_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    """The checker is the real one: a wrong value type and an unknown key fail it."""
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE_FILE.read_text().replace("retries: 3", "retries: three")
    broken.write_text(text)
    result = compose("--profile", "gpu", "config", "-q", file=broken)
    assert result.returncode != 0 and "retries" in result.stderr
    broken.write_text(COMPOSE_FILE.read_text() + "\nunknown_section: {}\n")
    assert compose("config", "-q", file=broken).returncode != 0


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_only_the_gateway_publishes_ports_so_the_others_scale(profile: str) -> None:
    services = config(profile)["services"]
    published = {name for name, s in services.items() if any(p.get("published") for p in s.get("ports", []))}
    assert published == {"gateway"}


def test_the_gateway_finds_every_replica_by_dns_in_both_profiles() -> None:
    for profile, names in (("gpu", ("generator", "vocoder")), ("cpu", ("generator-cpu", "vocoder-cpu"))):
        services = config(profile)["services"]
        env = services["gateway"]["environment"]
        assert env["VOXSERVE_GATEWAY_GENERATOR_ADDRESS"] == "dns:///generator:50052"
        assert env["VOXSERVE_GATEWAY_VOCODER_ADDRESS"] == "dns:///vocoder:50053"
        generator, vocoder = (services[n] for n in names)
        if profile == "cpu":  # the cpu services answer to the same names
            assert "generator" in generator["networks"]["default"]["aliases"]
            assert "vocoder" in vocoder["networks"]["default"]["aliases"]
        depends = services["gateway"]["depends_on"]
        assert all(depends[n]["condition"] == "service_healthy" for n in names)


def test_gpu_services_reserve_a_gpu_and_mount_the_pack_read_only() -> None:
    services = config("gpu")["services"]
    for name in ("generator", "vocoder"):
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        (volume,) = services[name]["volumes"]
        assert volume["target"] == "/models/pack" and volume["read_only"] is True
    assert "deploy" not in config("cpu")["services"]["vocoder-cpu"]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_the_gateway_publishes_grpc_metrics_and_http(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = config(profile)["services"]["gateway"]
    published = {p["target"]: str(p["published"]) for p in gateway["ports"]}
    assert published == {50051: "50051", 9101: "9101", 8080: "8080"}
    assert gateway["environment"]["VOXSERVE_GATEWAY_HTTP_PORT"] == "8080"
    monkeypatch.setenv("VOXSERVE_GATEWAY_HTTP_PUBLISH", "18080")
    moved = {p["target"]: str(p["published"]) for p in config(profile)["services"]["gateway"]["ports"]}
    assert moved[8080] == "18080" and moved[50051] == "50051"


def test_the_postgres_file_keeps_the_gateways_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXSERVE_POSTGRES_PASSWORD", "not-a-real-password")
    result = run(compose_binary(), "-f", COMPOSE_FILE, "-f", POSTGRES_FILE, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    gateway = json.loads(result.stdout)["services"]["gateway"]
    assert {p["target"] for p in gateway["ports"]} == {50051, 9101, 8080}
