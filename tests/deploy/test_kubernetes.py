"""The kustomize overlays render with kubectl's kustomize and pass kubernetes-validate --strict,
and carry what independent scaling needs: headless upstream services, native gRPC probes,
GPU limits on the GPU overlay only, disruption budgets, autoscalers, non-root pods. The gateway
serves HTTP on a named port behind its Service; components/http-probes moves its probes there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.tools import (
    BIN,
    KUBERNETES_VERSIONS,
    OVERLAYS,
    container,
    env_of,
    find,
    manifests,
    parse,
    render,
    run,
    with_components,
)

SERVICES = ("generator", "vocoder", "gateway")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_and_validates_strictly(overlay: str, version: str) -> None:
    result = run(
        BIN / "kubernetes-validate", "--strict", "--quiet", "-k", version, "-", stdin=render(overlay)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_an_unknown_field(tmp_path: Path) -> None:
    broken = render("gpu").replace("periodSeconds: 5", "periodSeconds: 5\n          bogusField: 1", 1)
    result = run(BIN / "kubernetes-validate", "--strict", "--quiet", "-", stdin=broken)
    assert result.returncode != 0 and "bogusField" in result.stdout + result.stderr


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_probes_budgets_and_autoscalers(overlay: str) -> None:
    docs = manifests(overlay)
    for service in SERVICES:
        spec = container(docs, service)
        (grpc_port,) = [p["containerPort"] for p in spec["ports"] if p["name"] == "grpc"]
        if overlay != "gpu-mtls":  # the kubelet's gRPC probes are plaintext only
            assert spec["readinessProbe"]["grpc"]["port"] == grpc_port
            assert spec["livenessProbe"]["grpc"]["port"] == grpc_port
        else:
            assert f"127.0.0.1:{grpc_port}" in spec["readinessProbe"]["exec"]["command"]
        headless = find(docs, "Service", f"voxserve-{service}")["spec"].get("clusterIP") == "None"
        assert headless == (service != "gateway"), "the gateway balances per stream over pod addresses"
        assert find(docs, "PodDisruptionBudget", f"voxserve-{service}")["spec"]["maxUnavailable"] == 1
        pod = find(docs, "Deployment", f"voxserve-{service}")["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["allowPrivilegeEscalation"] is False
    for scaled in ("gateway", "vocoder"):
        target = find(docs, "HorizontalPodAutoscaler", f"voxserve-{scaled}")["spec"]["scaleTargetRef"]
        assert target["name"] == f"voxserve-{scaled}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpus_only_where_the_overlay_says(overlay: str) -> None:
    docs = manifests(overlay)
    for service in SERVICES:
        limits = container(docs, service)["resources"]["limits"]
        wants_gpu = overlay.startswith("gpu") and service != "gateway"
        assert (limits.get("nvidia.com/gpu") == 1) == wants_gpu
    hpa = find(docs, "HorizontalPodAutoscaler", "voxserve-vocoder")["spec"]["metrics"]
    metric = hpa[0]["pods"]["metric"]["name"] if overlay.startswith("gpu") else hpa[0]["resource"]["name"]
    assert metric == ("DCGM_FI_DEV_GPU_UTIL" if overlay.startswith("gpu") else "cpu")


def test_the_voice_registry_and_keys_reach_the_gateway() -> None:
    docs = manifests("gpu")
    gateway = find(docs, "Deployment", "voxserve-gateway")["spec"]["template"]["spec"]
    (voices,) = [v for v in gateway["volumes"] if v["name"] == "voices"]
    config_map = find(docs, "ConfigMap", voices["configMap"]["name"])  # the generated, hashed name
    assert "voices.yaml" in config_map["data"]
    spec = gateway["containers"][0]
    assert env_of(spec)["VOXSERVE_GATEWAY_VOICES_FILE"].endswith("/voices.yaml")
    (keys,) = [e for e in spec["env"] if e["name"] == "VOXSERVE_GATEWAY_API_KEYS"]
    assert keys["valueFrom"]["secretKeyRef"] == {"name": "voxserve-api-keys", "key": "keys", "optional": True}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_serves_http_on_a_named_port_behind_its_service(overlay: str) -> None:
    docs = manifests(overlay)
    spec = container(docs, "gateway")
    assert {"name": "http", "containerPort": 8080} in spec["ports"]
    assert env_of(spec)["VOXSERVE_GATEWAY_HTTP_PORT"] == "8080"
    service_ports = find(docs, "Service", "voxserve-gateway")["spec"]["ports"]
    assert {"name": "http", "port": 8080, "targetPort": "http"} in service_ports
    assert "httpGet" not in spec["readinessProbe"], "gRPC (or exec) probes stay the default"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_http_probes_component_probes_readyz_and_healthz(
    overlay: str, version: str, tmp_path: Path
) -> None:
    rendered = with_components(tmp_path, overlay, "http-probes")
    result = run(BIN / "kubernetes-validate", "--strict", "--quiet", "-k", version, "-", stdin=rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    docs = parse(rendered)
    gateway = container(docs, "gateway")
    http_ports = [p["containerPort"] for p in gateway["ports"] if p["name"] == "http"]
    assert http_ports == [8080]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        # One handler per probe: the gRPC or mtls exec handler is gone, not left beside httpGet.
        handlers = {"grpc", "exec", "httpGet", "tcpSocket"} & set(gateway[probe])
        assert handlers == {"httpGet"}, f"{probe}: {handlers}"
        assert gateway[probe]["httpGet"] == {"path": path, "port": "http"}
    assert gateway["readinessProbe"]["periodSeconds"] == 5
    untouched = manifests(overlay)
    for service in ("generator", "vocoder"):
        assert container(docs, service) == container(untouched, service)


def test_a_tls_gateway_gets_https_probes_from_the_http_probes_tls_component(tmp_path: Path) -> None:
    """gpu-mtls gives the gateway a certificate, which its HTTP port serves too: the probes that
    reach it must speak HTTPS."""
    assert "VOXSERVE_GATEWAY_TLS_CERT_FILE" in env_of(container(manifests("gpu-mtls"), "gateway"))
    rendered = with_components(tmp_path, "gpu-mtls", "http-probes", "http-probes-tls")
    result = run(
        BIN / "kubernetes-validate", "--strict", "--quiet", "-k", KUBERNETES_VERSIONS[-1], "-", stdin=rendered
    )
    assert result.returncode == 0, result.stdout + result.stderr
    gateway = container(parse(rendered), "gateway")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert set(gateway[probe]) & {"grpc", "exec", "httpGet", "tcpSocket"} == {"httpGet"}
        assert gateway[probe]["httpGet"] == {"path": path, "port": "http", "scheme": "HTTPS"}
