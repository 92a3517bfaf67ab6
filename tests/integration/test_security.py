"""The three services with TLS: generator and vocoder want client certificates (mutual TLS), the
gateway reaches them with its own and serves TLS to the public with API keys.

A stack of its own (a second vLLM engine, about 40 s) on a throwaway PKI."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import soundfile
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import running_stack
from tests.services.shared.common.test_security import Pki, write_pki
from voxserve.cli import main
from voxserve.common.auth import UNAUTHENTICATED_MESSAGE
from voxserve.families.pack import Pack
from voxserve.stack import LocalStack, Ports
from voxserve.v1 import generator_pb2, speech_pb2, speech_pb2_grpc

KEYS = ("key-alpha", "key-beta")
AUTH = (("authorization", f"Bearer {KEYS[1]}"),)
SERVING = health_pb2.HealthCheckResponse.SERVING


def tls_env(pki: Pki) -> dict[str, str]:
    env: dict[str, str] = {"VOXSERVE_GENERATOR_MAX_NUM_SEQS": "4"}
    for service in ("GENERATOR", "VOCODER", "GATEWAY"):
        env[f"VOXSERVE_{service}_TLS_CERT_FILE"] = str(pki.server_cert)
        env[f"VOXSERVE_{service}_TLS_KEY_FILE"] = str(pki.server_key)
    for service in ("GENERATOR", "VOCODER"):  # the gateway's public port takes API keys instead
        env[f"VOXSERVE_{service}_TLS_CLIENT_CA_FILE"] = str(pki.ca)
    env |= {
        "VOXSERVE_GATEWAY_UPSTREAM_TLS_CA_FILE": str(pki.ca),
        "VOXSERVE_GATEWAY_UPSTREAM_TLS_CERT_FILE": str(pki.client_cert),
        "VOXSERVE_GATEWAY_UPSTREAM_TLS_KEY_FILE": str(pki.client_key),
        "VOXSERVE_GATEWAY_UPSTREAM_TLS_SERVER_NAME": "localhost",
        "VOXSERVE_GATEWAY_API_KEYS": ",".join(KEYS),
    }
    return env


def credentials(pki: Pki, client_cert: bool = True) -> grpc.ChannelCredentials:
    if not client_cert:
        return grpc.ssl_channel_credentials(pki.ca.read_bytes())
    return grpc.ssl_channel_credentials(
        pki.ca.read_bytes(), pki.client_key.read_bytes(), pki.client_cert.read_bytes()
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return write_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_stack(tiny_pack: Pack, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    local = LocalStack(
        tiny_pack.root,
        Ports.free(),
        log_dir=tmp_path_factory.mktemp("tls-logs"),
        env=tls_env(pki),  # health checks take the gateway's upstream CA and certificate, as `voxserve up`
    )
    yield from running_stack(local)


def health_check(address: str, creds: grpc.ChannelCredentials | None) -> int:
    channel = grpc.insecure_channel(address) if creds is None else grpc.secure_channel(address, creds)
    with channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
    return int(reply.status)


def refusal(address: str, creds: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        health_check(address, creds)
    return info.value.code()  # type: ignore[no-any-return, attr-defined]


def test_synthesize_over_tls_with_a_key(tls_stack: LocalStack, pki: Pki) -> None:
    """Public TLS to the gateway (no client certificate), mutual TLS from it to both upstreams."""
    request = speech_pb2.SynthesizeRequest(
        text="Secure speech.", sampling=generator_pb2.SamplingParams(max_tokens=20)
    )
    with grpc.secure_channel(tls_stack.ports.address("gateway"), credentials(pki, client_cert=False)) as ch:
        responses = list(speech_pb2_grpc.SpeechStub(ch).Synthesize(request, metadata=AUTH, timeout=120))
    pcm = b"".join(r.audio.data for r in responses if r.HasField("audio"))
    summary = responses[-1].summary
    assert 0 < summary.semantic_tokens <= 20
    assert len(pcm) // 2 == summary.samples == 320 * summary.semantic_tokens


@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "Bearer key-gamma"),), (("authorization", f"Bearer  {KEYS[0]}"),)],
    ids=["no-key", "wrong-key", "malformed"],
)
def test_the_gateway_refuses_calls_without_a_valid_key(
    tls_stack: LocalStack, pki: Pki, metadata: tuple[tuple[str, str], ...]
) -> None:
    with grpc.secure_channel(tls_stack.ports.address("gateway"), credentials(pki, client_cert=False)) as ch:
        stub = speech_pb2_grpc.SpeechStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Synthesize(speech_pb2.SynthesizeRequest(text="Hi."), metadata=metadata, timeout=30))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        assert info.value.details() == UNAUTHENTICATED_MESSAGE  # type: ignore[attr-defined]
        with pytest.raises(grpc.RpcError) as info:
            stub.ListVoices(speech_pb2.ListVoicesRequest(), metadata=metadata, timeout=30)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        assert stub.ListVoices(speech_pb2.ListVoicesRequest(), metadata=AUTH, timeout=30).voices


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("grpcurl", path=str(Path(sys.executable).parent))
    assert exe, "grpcurl is installed with the dev extra"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60, check=False)


def test_health_and_reflection_need_no_key(tls_stack: LocalStack, pki: Pki) -> None:
    gateway = tls_stack.ports.address("gateway")
    assert health_check(gateway, credentials(pki, client_cert=False)) == SERVING
    listed = grpcurl("-cacert", str(pki.ca), gateway, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"voxserve.v1.Speech", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    # The README's call with a key, through the same tool.
    voices = grpcurl(
        "-cacert", str(pki.ca), "-H", AUTH[0][0] + ": " + AUTH[0][1], gateway, "voxserve.v1.Speech/ListVoices"
    )
    assert voices.returncode == 0, voices.stderr
    assert "default" in {v["id"] for v in json.loads(voices.stdout)["voices"]}


@pytest.mark.parametrize("service", ["generator", "vocoder"])
def test_upstreams_want_a_client_certificate_from_their_ca(
    tls_stack: LocalStack, pki: Pki, service: str, tmp_path: Path
) -> None:
    address = tls_stack.ports.address(service)
    assert health_check(address, credentials(pki)) == SERVING
    assert refusal(address, credentials(pki, client_cert=False)) == grpc.StatusCode.UNAVAILABLE
    stranger = write_pki(tmp_path / "other-ca")  # a client certificate another CA signed
    foreign = grpc.ssl_channel_credentials(
        pki.ca.read_bytes(), stranger.client_key.read_bytes(), stranger.client_cert.read_bytes()
    )
    assert refusal(address, foreign) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("service", ["gateway", "generator", "vocoder"])
def test_plaintext_clients_are_refused(tls_stack: LocalStack, service: str) -> None:
    assert refusal(tls_stack.ports.address(service), None) == grpc.StatusCode.UNAVAILABLE


def test_half_a_key_pair_stops_a_service_at_start_up(pki: Pki, tmp_path: Path) -> None:
    local = LocalStack(
        tmp_path, Ports.free(), log_dir=tmp_path, env={"VOXSERVE_GATEWAY_TLS_CERT_FILE": str(pki.server_cert)}
    )
    process = local.start_service("gateway")
    try:
        assert process.wait(60) != 0
    finally:
        local.stop()
    assert (
        "VOXSERVE_GATEWAY_TLS_CERT_FILE is set but VOXSERVE_GATEWAY_TLS_KEY_FILE is not"
        in (tmp_path / "gateway.log").read_text()
    )


def test_voxserve_say_reaches_a_secured_gateway(tls_stack: LocalStack, pki: Pki, tmp_path: Path) -> None:
    out = tmp_path / "secure.wav"
    gateway = tls_stack.ports.address("gateway")
    command = [sys.executable, "-m", "voxserve.cli", "say", "Over TLS.", "--address", gateway, "-o", str(out)]
    command += ["--max-tokens", "12", "--ca", str(pki.ca)]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    done = subprocess.run(
        [*command, "--api-key", KEYS[0]], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert soundfile.info(str(out)).frames == 12 * 320


def test_voxserve_health_checks_a_mutual_tls_service_with_a_client_certificate(
    tls_stack: LocalStack, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    address = tls_stack.ports.address("vocoder")
    tls = ["--ca", str(pki.ca), "--server-name", "localhost"]
    assert (
        main(
            [
                "health",
                "--address",
                address,
                *tls,
                "--cert",
                str(pki.client_cert),
                "--key",
                str(pki.client_key),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == f"{address}: SERVING"
    assert main(["health", "--address", address, *tls, "--timeout", "5"]) == 1, "no client certificate"
    assert address in capsys.readouterr().err


def test_the_http_api_serves_tls_with_the_gateways_certificate(tls_stack: LocalStack, pki: Pki) -> None:
    """The gateway's TLS settings cover its HTTP port too: HTTPS with the same certificate, the
    same keys; a plaintext request gets no answer."""
    url = f"https://localhost:{tls_stack.ports.gateway_http}"
    with httpx.Client(verify=ssl.create_default_context(cafile=str(pki.ca)), timeout=10) as client:
        assert client.get(url + "/readyz").json() == {"status": "ready"}
        assert client.get(url + "/v1/models").status_code == 401
        models = client.get(url + "/v1/models", headers={"authorization": f"Bearer {KEYS[0]}"})
        assert models.json()["data"][0]["id"] == "voxserve"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://localhost:{tls_stack.ports.gateway_http}/readyz", timeout=10)
