"""Where the gateways keep enrolled voices: by default compose gives its one gateway an SQLite
file on a volume; deploy/compose/postgres.yml and the kustomize component postgres (in every
overlay, whose gateways run several replicas) give the gateways one PostgreSQL, with the password
from a variable or a Secret and never in the store's URL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.tools import (
    COMPOSE_FILE,
    OVERLAYS,
    ROOT,
    compose_binary,
    container,
    env_of,
    find,
    manifests,
    run,
)

POSTGRES_OVERRIDE = ROOT / "deploy" / "compose" / "postgres.yml"
PROFILES = ("cpu", "gpu")
PASSWORD = "only-for-this-test"


def compose_config(profile: str, *files: Path) -> dict[str, Any]:
    args: list[str | Path] = []
    for file in (COMPOSE_FILE, *files):
        args += ["-f", file]
    result = run(compose_binary(), *args, "--profile", profile, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.mark.parametrize("profile", PROFILES)
def test_compose_keeps_voices_in_an_sqlite_file_on_a_volume_by_default(profile: str) -> None:
    gateway = compose_config(profile)["services"]["gateway"]
    store = gateway["environment"]["VOXSERVE_GATEWAY_VOICE_STORE"]
    (volume,) = [v for v in gateway["volumes"] if v["type"] == "volume"]
    assert store.startswith(volume["target"] + "/") and store.endswith(".sqlite3")


@pytest.mark.parametrize("profile", PROFILES)
def test_the_compose_postgres_file_points_the_gateway_at_its_database(
    profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXSERVE_POSTGRES_PASSWORD", PASSWORD)
    services = compose_config(profile, POSTGRES_OVERRIDE)["services"]
    postgres, gateway = services["postgres"], services["gateway"]
    env = gateway["environment"]
    url = urlsplit(env["VOXSERVE_GATEWAY_VOICE_STORE"])
    database = postgres["environment"]
    assert url.scheme == "postgresql" and url.password is None
    assert (url.hostname, str(url.port)) == ("postgres", postgres["expose"][0])
    assert (url.username, url.path) == (database["POSTGRES_USER"], "/" + database["POSTGRES_DB"])
    assert env["PGPASSWORD"] == database["POSTGRES_PASSWORD"] == PASSWORD
    assert "volumes" not in gateway, "no SQLite file once the store is PostgreSQL"
    assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert postgres["healthcheck"]["test"][1] == "pg_isready"
    assert not postgres.get("ports"), "the database is not published"
    (data,) = postgres["volumes"]
    assert data["type"] == "volume" and data["target"] == "/var/lib/postgresql/data"


def test_the_compose_postgres_file_needs_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOXSERVE_POSTGRES_PASSWORD", raising=False)
    result = run(
        compose_binary(), "-f", COMPOSE_FILE, "-f", POSTGRES_OVERRIDE, "--profile", "cpu", "config", "-q"
    )
    assert result.returncode != 0 and "VOXSERVE_POSTGRES_PASSWORD" in result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_shares_one_postgres_among_its_gateway_replicas(overlay: str) -> None:
    docs = manifests(overlay)
    gateway = container(docs, "gateway")
    hpa = find(docs, "HorizontalPodAutoscaler", "voxserve-gateway")["spec"]
    replicas = find(docs, "Deployment", "voxserve-gateway")["spec"]["replicas"]
    store = env_of(gateway)["VOXSERVE_GATEWAY_VOICE_STORE"]
    # Several replicas cannot each keep a file: their voices must be one store.
    assert max(replicas, hpa["maxReplicas"]) > 1 and store.startswith("postgresql://")

    statefulset = find(docs, "StatefulSet", "voxserve-postgres")
    pod = statefulset["spec"]["template"]["spec"]
    (postgres,) = pod["containers"]
    service = find(docs, "Service", "voxserve-postgres")["spec"]
    assert statefulset["spec"]["serviceName"] == "voxserve-postgres"
    assert service["selector"] == statefulset["spec"]["selector"]["matchLabels"]
    (port,) = service["ports"]
    assert {p["name"]: p["containerPort"] for p in postgres["ports"]}[port["targetPort"]] == port["port"]

    url = urlsplit(store)
    database = env_of(postgres)
    assert url.password is None, "the password comes from the Secret, not the URL"
    assert (url.hostname, url.port) == ("voxserve-postgres", port["port"])
    assert (url.username, url.path) == (database["POSTGRES_USER"], "/" + database["POSTGRES_DB"])
    secret = {"name": "voxserve-postgres", "key": "password"}
    (password,) = [e for e in gateway["env"] if e["name"] == "PGPASSWORD"]
    (server_password,) = [e for e in postgres["env"] if e["name"] == "POSTGRES_PASSWORD"]
    assert password["valueFrom"]["secretKeyRef"] == server_password["valueFrom"]["secretKeyRef"] == secret

    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in postgres["volumeMounts"]}
    assert database["PGDATA"].startswith(mounts[claim["metadata"]["name"]] + "/")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert postgres["securityContext"]["allowPrivilegeEscalation"] is False
    assert postgres["readinessProbe"]["exec"]["command"][0] == "pg_isready"
